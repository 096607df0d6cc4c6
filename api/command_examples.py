"""One example per staff command: the body an OpenAPI reader (or the CLI's help) sees.

Fields named in an endpoint's path (`session_id` of `/sessions/{session_id}/attendance`)
are listed here too and dropped from the body example. A unit test builds every command
from its example, so the examples stay valid as the commands change.
"""

from __future__ import annotations

from typing import Any

_SESSION = "s-2026-01-05-am"
_STARTS = "2026-01-05T15:00:00Z"

EXAMPLES: dict[str, dict[str, Any]] = {
    "start_screening": {"reason": "referral documents received"},
    "record_screening": {
        "findings": {
            "moderate_symptoms": True,
            "stable_supportive_living_environment": True,
            "reliable_transportation": True,
            "motivated_for_treatment": True,
            "able_to_participate_in_groups": True,
            "severe_crisis": False,
            "active_intoxication_needing_withdrawal_management": False,
            "imminent_danger_to_self_or_others": False,
        }
    },
    "refer_out": {
        "level_of_care": "php",
        "summary": "needs daily structure: referred to the partial hospitalization program",
    },
    "record_assessment": {
        "asam_edition": "asam-criteria-3",
        "asam_ratings": {
            "acute_intoxication_withdrawal": 1,
            "biomedical": 0,
            "emotional_behavioral_cognitive": 2,
            "readiness_to_change": 2,
            "relapse_continued_use": 2,
            "recovery_environment": 1,
        },
        "diagnoses": ["F10.20"],
        "recommended_level": "iop",
    },
    "override_level_of_care": {
        "justification": "PHP waitlist of 3 weeks; IOP with weekly psychiatry review meanwhile"
    },
    "admit_client": {},
    "record_treatment_plan": {
        "plan": {
            "problems": [{"problem_id": "p1", "description": "alcohol use disorder, moderate"}],
            "goals": [
                {
                    "area": "coping_strategies",
                    "description": "use urge surfing",
                    "problem_ids": ["p1"],
                },
                {"area": "aftercare_readiness", "description": "join a peer support group"},
            ],
            "modalities": ["cbt", "twelve_step_facilitation", "psychoeducation"],
            "weekly_schedule": [
                {"weekday": day, "hours": 3.0, "kinds": ["group_process"]} for day in (0, 1, 2)
            ],
            "care_team": [
                {"user_id": "cal.clinician", "discipline": "therapist"},
                {"user_id": "pat.psychiatrist", "discipline": "psychiatrist"},
            ],
            "primary_clinician": "cal.clinician",
        }
    },
    "advance_phase": {"reason": "stabilization goals met"},
    "complete_plan_review": {"outcome": "continue", "notes": "attending all groups"},
    "place_on_hold": {"kind": "hospitalization", "review_days": 7},
    "resume_from_hold": {},
    "step_up": {"to_level": "php", "intent_to_return": True},
    "record_relapse_prevention_plan": {
        "plan": {
            "triggers": ["payday", "old neighbourhood"],
            "coping_strategies": ["call sponsor", "urge surfing"],
        }
    },
    "record_aftercare_plan": {
        "plan": {
            "continued_therapy": "weekly outpatient CBT",
            "peer_support": ["AA"],
            "community_resources": ["YMCA"],
        }
    },
    "step_down": {"to_level": "outpatient"},
    "discharge": {
        "discharge_reason": "completed",
        "summary": "completed all three phases; aftercare plan in place",
    },
    "schedule_session": {
        "session_id": _SESSION,
        "kind": "group_skills",
        "starts_at": _STARTS,
        "hours": 3,
    },
    "reschedule_session": {"session_id": _SESSION, "starts_at": "2026-01-06T15:00:00Z"},
    "cancel_session": {"session_id": _SESSION, "reason": "facilitator ill"},
    "record_attendance": {"session_id": _SESSION, "status": "attended"},
    "correct_attendance": {
        "session_id": _SESSION,
        "status": "partial",
        "hours": 1.5,
        "reason": "left after the first half; recorded as attended by mistake",
    },
    "resolve_task": {"task_id": "t-1", "outcome": "reached by phone; attends Thursday"},
    "record_check_in": {"check_in": 1},
    "report_relapse": {"reason": "reported at the 30-day check-in"},
    "readmit_client": {
        "new_episode_id": "3f1c2a9e-readmit",
        "summary": "relapse after step-down; readmitted to IOP",
    },
    "record_consent": {
        "consent_id": "c-1",
        "recipient_ref": "family-contact-1",
        "recipient_kind": "family",
        "scopes": ["attendance"],
        "expires_at": "2026-12-31T23:59:59Z",
    },
    "revoke_consent": {"consent_id": "c-1"},
    "notify_party": {
        "recipient_ref": "family-contact-1",
        "recipient_kind": "family",
        "scope": "attendance",
    },
    "record_authorization": {
        "authorization_id": "auth-1",
        "payer_ref": "payer-17",
        "level_of_care": "iop",
        "units": 36,
        "starts_at": "2026-01-05T00:00:00Z",
        "ends_at": "2026-03-31T23:59:59Z",
    },
}
