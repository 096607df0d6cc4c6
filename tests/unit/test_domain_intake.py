"""Referral, screening, referral out, assessment, level-of-care override and admission."""

from __future__ import annotations

import pytest
from domain_scenario import CLINICIAN, ELIGIBLE, INTAKE, RATINGS, SUPERVISOR, T0, Episode, types

from domain import commands as c
from domain.errors import (
    AssessmentRequired,
    EpisodeAlreadyStarted,
    EpisodeClosed,
    EpisodeNotStarted,
    InvalidCommand,
    LevelOfCareOverrideRequired,
    UnknownProgram,
    WrongStage,
)
from domain.state import Stage
from domain.vocabulary import AsamEdition, LevelOfCare


class TestReferral:
    def test_referral_opens_the_episode_in_the_referred_stage(self) -> None:
        ep = Episode()
        events = ep.run(
            ep.make(
                c.ReferClient,
                actor=INTAKE,
                client_ref="client-9",
                program_id="adult-iop",
                referral_source=c.ReferralSource.EMERGENCY_DEPARTMENT,
            )
        )
        assert types(events) == ["client_referred"]
        assert events[0].seq == 1
        assert ep.s.stage is Stage.REFERRED
        assert ep.s.referral_source is c.ReferralSource.EMERGENCY_DEPARTMENT

    def test_referral_to_an_unknown_program_names_the_known_ones(self) -> None:
        ep = Episode(program_id="no-such-program")
        with pytest.raises(UnknownProgram, match="adolescent-iop, adult-iop"):
            ep.referred()

    def test_readmission_referral_links_the_earlier_episode(self) -> None:
        ep = Episode(episode_id="ep-2").referred(readmission_of="ep-1")
        assert ep.s.readmission_of == "ep-1"

    def test_command_before_referral_asks_to_refer_first(self) -> None:
        ep = Episode()
        with pytest.raises(EpisodeNotStarted, match="refer the client first"):
            ep.decide(ep.make(c.StartScreening, actor=INTAKE))

    def test_second_referral_to_the_same_episode_is_refused(self) -> None:
        ep = Episode().referred()
        with pytest.raises(EpisodeAlreadyStarted, match="new episode id"):
            ep.referred()


class TestScreening:
    def test_starting_screening_moves_to_screening(self) -> None:
        ep = Episode().referred()
        assert types(ep.run(ep.make(c.StartScreening, actor=INTAKE))) == ["screening_started"]
        assert ep.s.stage is Stage.SCREENING

    def test_eligible_screening_moves_to_assessment(self) -> None:
        ep = Episode().referred()
        ep.run(ep.make(c.StartScreening, actor=INTAKE))
        events = ep.run(ep.make(c.RecordScreening, actor=INTAKE, findings=ELIGIBLE))
        assert types(events) == ["screening_recorded"]
        assert ep.s.stage is Stage.ASSESSMENT
        assert ep.s.eligible is True

    def test_exclusion_refers_the_client_out_to_a_higher_level(self) -> None:
        ep = Episode().referred()
        findings = ELIGIBLE.model_copy(update={"imminent_danger_to_self_or_others": True})
        events = ep.run(
            ep.make(
                c.RecordScreening,
                actor=INTAKE,
                findings=findings,
                referred_out_to=LevelOfCare.INPATIENT,
            )
        )
        assert types(events) == ["screening_recorded", "client_referred_out"]
        assert "imminent_danger_to_self_or_others" in events[1].summary
        assert ep.s.stage is Stage.REFERRED_OUT
        assert ep.s.is_closed

    def test_unmet_criterion_without_destination_asks_for_one(self) -> None:
        ep = Episode().referred()
        findings = ELIGIBLE.model_copy(update={"reliable_transportation": False})
        with pytest.raises(InvalidCommand, match=r"reliable_transportation.*referred_out_to"):
            ep.decide(ep.make(c.RecordScreening, actor=INTAKE, findings=findings))

    def test_eligible_screening_with_destination_is_inconsistent(self) -> None:
        ep = Episode().referred()
        with pytest.raises(InvalidCommand, match="leave referred_out_to empty"):
            ep.decide(
                ep.make(
                    c.RecordScreening,
                    actor=INTAKE,
                    findings=ELIGIBLE,
                    referred_out_to=LevelOfCare.PHP,
                )
            )

    def test_screening_twice_is_refused_by_stage(self) -> None:
        ep = Episode().screened()
        with pytest.raises(WrongStage, match="needs the episode to be referred or screening"):
            ep.decide(ep.make(c.RecordScreening, actor=INTAKE, findings=ELIGIBLE))

    def test_nothing_is_accepted_after_referral_out(self) -> None:
        ep = Episode().referred()
        ep.run(
            ep.make(c.ReferOut, actor=INTAKE, level_of_care=LevelOfCare.PHP, summary="needs PHP")
        )
        with pytest.raises(EpisodeClosed, match="referred_out"):
            ep.decide(ep.make(c.StartScreening, actor=INTAKE))


class TestReferOut:
    def test_refer_out_closes_the_episode_with_the_level(self) -> None:
        ep = Episode().assessed()
        events = ep.run(
            ep.make(c.ReferOut, level_of_care=LevelOfCare.RESIDENTIAL, summary="needs 24h care")
        )
        assert types(events) == ["client_referred_out"]
        assert ep.s.referred_out_to is LevelOfCare.RESIDENTIAL

    def test_refer_out_to_the_programs_own_level_is_refused(self) -> None:
        ep = Episode().referred()
        with pytest.raises(InvalidCommand, match="own level of care"):
            ep.decide(ep.make(c.ReferOut, level_of_care=LevelOfCare.IOP, summary="x"))


class TestAssessment:
    def test_assessment_records_ratings_edition_and_codes(self) -> None:
        ep = Episode().assessed()
        assert ep.s.assessment is not None
        assert ep.s.assessment.asam_edition is AsamEdition.THIRD
        assert ep.s.assessment.diagnoses == ("F10.20",)

    def test_icd10_codes_are_format_checked(self) -> None:
        with pytest.raises(ValueError, match="diagnoses"):
            c.RecordAssessment(
                command_id="x",
                actor=CLINICIAN,
                asam_edition=AsamEdition.FOURTH,
                asam_ratings=RATINGS,
                diagnoses=("alcoholism",),
                recommended_level=LevelOfCare.IOP,
            )

    def test_icd10_codes_are_normalised_to_upper_case(self) -> None:
        command = c.RecordAssessment(
            command_id="x",
            actor=CLINICIAN,
            asam_edition=AsamEdition.FOURTH,
            asam_ratings=RATINGS,
            diagnoses=("f33.1",),
            recommended_level=LevelOfCare.IOP,
        )
        assert command.diagnoses == ("F33.1",)

    def test_asam_rating_above_four_is_rejected(self) -> None:
        with pytest.raises(ValueError, match="less than or equal to 4"):
            RATINGS.model_validate({**RATINGS.model_dump(), "biomedical": 5})

    def test_duplicate_diagnosis_codes_are_refused(self) -> None:
        ep = Episode().screened()
        with pytest.raises(InvalidCommand, match="each ICD-10 code once"):
            ep.decide(
                ep.make(
                    c.RecordAssessment,
                    asam_edition=AsamEdition.THIRD,
                    asam_ratings=RATINGS,
                    diagnoses=("F10.20", "F10.20"),
                    recommended_level=LevelOfCare.IOP,
                )
            )

    def test_assessment_before_screening_is_refused(self) -> None:
        ep = Episode().referred()
        with pytest.raises(WrongStage, match="record an assessment"):
            ep.decide(
                ep.make(
                    c.RecordAssessment,
                    asam_edition=AsamEdition.THIRD,
                    asam_ratings=RATINGS,
                    diagnoses=("F10.20",),
                    recommended_level=LevelOfCare.IOP,
                )
            )


class TestAdmission:
    def test_admission_starts_the_first_phase_with_a_plan_deadline(self) -> None:
        ep = Episode().assessed()
        events = ep.run(ep.make(c.AdmitClient))
        assert types(events) == ["client_admitted"]
        admitted = events[0]
        assert admitted.phase_id == "stabilization"
        assert (admitted.plan_due_at - T0).days == 7
        assert ep.s.stage is Stage.TREATMENT_PLANNING

    def test_admission_without_assessment_is_refused(self) -> None:
        ep = Episode().screened()
        with pytest.raises(AssessmentRequired, match="record the assessment"):
            ep.decide(ep.make(c.AdmitClient))

    def test_recommended_level_other_than_iop_blocks_admission(self) -> None:
        ep = Episode().assessed(level=LevelOfCare.PHP)
        with pytest.raises(LevelOfCareOverrideRequired, match="supervisor must record"):
            ep.decide(ep.make(c.AdmitClient))

    def test_supervisor_override_with_justification_allows_admission(self) -> None:
        ep = Episode().assessed(level=LevelOfCare.PHP)
        events = ep.run(
            ep.make(
                c.OverrideLevelOfCare,
                actor=SUPERVISOR,
                justification="no PHP bed within 50 miles; daily check-ins",
            )
        )
        assert types(events) == ["level_of_care_overridden"]
        assert events[0].recommended_level is LevelOfCare.PHP
        assert types(ep.run(ep.make(c.AdmitClient))) == ["client_admitted"]

    def test_override_is_not_needed_when_iop_is_recommended(self) -> None:
        ep = Episode().assessed()
        with pytest.raises(WrongStage, match="no override is needed"):
            ep.decide(ep.make(c.OverrideLevelOfCare, actor=SUPERVISOR, justification="x"))

    def test_override_before_assessment_asks_for_the_assessment(self) -> None:
        ep = Episode().screened()
        with pytest.raises(AssessmentRequired, match="before overriding"):
            ep.decide(ep.make(c.OverrideLevelOfCare, actor=SUPERVISOR, justification="x"))

    def test_reassessment_clears_an_earlier_override(self) -> None:
        ep = Episode().assessed(level=LevelOfCare.PHP)
        ep.run(ep.make(c.OverrideLevelOfCare, actor=SUPERVISOR, justification="x"))
        ep.run(
            ep.make(
                c.RecordAssessment,
                asam_edition=AsamEdition.THIRD,
                asam_ratings=RATINGS,
                diagnoses=("F10.20",),
                recommended_level=LevelOfCare.RESIDENTIAL,
            )
        )
        with pytest.raises(LevelOfCareOverrideRequired):
            ep.decide(ep.make(c.AdmitClient))
