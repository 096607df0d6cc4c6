"""Consents (42 CFR Part 2) and payer authorizations."""

from __future__ import annotations

import pytest
from domain_scenario import DAY, HOUR, INTAKE, SUPERVISOR, T0, Episode, types

from domain import commands as c
from domain import next_deadline
from domain.errors import (
    ConsentAlreadyRevoked,
    ConsentRequired,
    DuplicateId,
    InvalidCommand,
    UnknownReference,
)
from domain.vocabulary import (
    AttendanceStatus,
    AuthorizationFlag,
    ConsentScope,
    RecipientKind,
)


def with_consent(ep: Episode, expires_in_days: int = 90) -> Episode:
    ep.run(
        ep.make(
            c.RecordConsent,
            actor=INTAKE,
            consent_id="k1",
            recipient_ref="mother",
            recipient_kind=RecipientKind.FAMILY,
            scopes=(ConsentScope.ATTENDANCE, ConsentScope.APPOINTMENTS),
            expires_at=T0 + expires_in_days * DAY,
        )
    )
    return ep


def notify(ep: Episode, scope: ConsentScope = ConsentScope.ATTENDANCE) -> c.NotifyParty:
    return ep.make(
        c.NotifyParty, recipient_ref="mother", recipient_kind=RecipientKind.FAMILY, scope=scope
    )


class TestConsent:
    def test_notification_under_an_active_consent_is_sent(self) -> None:
        ep = with_consent(Episode().in_program())
        events = ep.run(notify(ep))
        assert types(events) == ["party_notified"]
        assert events[0].consent_id == "k1"

    def test_notification_to_family_without_consent_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(ConsentRequired, match="record the client's signed consent"):
            ep.decide(notify(ep))

    def test_notification_outside_the_consented_scope_is_refused(self) -> None:
        ep = with_consent(Episode().in_program())
        with pytest.raises(ConsentRequired, match="diagnosis"):
            ep.decide(notify(ep, ConsentScope.DIAGNOSIS))

    def test_notification_after_the_consent_expired_is_refused(self) -> None:
        ep = with_consent(Episode().in_program(), expires_in_days=10).advance(11 * DAY)
        with pytest.raises(ConsentRequired):
            ep.decide(notify(ep))

    def test_revoked_consent_stops_notifications(self) -> None:
        ep = with_consent(Episode().in_program())
        assert types(ep.run(ep.make(c.RevokeConsent, consent_id="k1"))) == ["consent_revoked"]
        with pytest.raises(ConsentRequired):
            ep.decide(notify(ep))
        with pytest.raises(ConsentAlreadyRevoked):
            ep.decide(ep.make(c.RevokeConsent, consent_id="k1"))

    def test_revoking_an_unknown_consent_is_refused(self) -> None:
        ep = Episode().referred()
        with pytest.raises(UnknownReference, match="check the id"):
            ep.decide(ep.make(c.RevokeConsent, consent_id="nope"))

    def test_consent_id_cannot_be_reused(self) -> None:
        ep = with_consent(Episode().referred())
        with pytest.raises(DuplicateId, match="new consent id"):
            with_consent(ep)

    def test_consent_expiring_in_the_past_is_refused(self) -> None:
        ep = Episode().referred().advance(100 * DAY)
        with pytest.raises(InvalidCommand, match="future expires_at"):
            with_consent(ep)


def with_authorization(ep: Episode, units: int = 10, days: int = 30) -> Episode:
    ep.run(
        ep.make(
            c.RecordAuthorization,
            actor=INTAKE,
            authorization_id="a1",
            payer_ref="payer-7",
            units=units,
            starts_at=T0,
            ends_at=T0 + days * DAY,
        )
    )
    return ep


class TestAuthorizations:
    def test_session_beyond_the_authorized_units_is_flagged(self) -> None:
        ep = with_authorization(Episode().in_program(), units=1)
        for i in range(2):
            ep.session(f"s{i}", T0 + (i + 1) * DAY)
        ep.now = T0 + 3 * DAY
        assert types(ep.attendance("s0", "attended")) == ["attendance_recorded"]
        events = ep.attendance("s1", "partial", hours=1)
        assert types(events) == ["attendance_recorded", "session_beyond_authorization"]
        assert events[1].flag is AuthorizationFlag.UNITS_EXHAUSTED
        assert events[1].authorization_ids == ("a1",)

    def test_session_outside_the_authorized_dates_is_flagged(self) -> None:
        ep = with_authorization(Episode().in_program(), days=2)
        ep.session("s1", T0 + 3 * DAY)
        ep.now = T0 + 3 * DAY + 3 * HOUR
        events = ep.attendance("s1", "attended")
        assert events[-1].flag is AuthorizationFlag.NO_AUTHORIZATION_COVERS_DATE

    def test_sessions_are_not_flagged_when_no_authorization_is_tracked(self) -> None:
        ep = Episode().in_program().session("s1", T0 + DAY)
        ep.now = T0 + 2 * DAY
        assert types(ep.attendance("s1", "attended")) == ["attendance_recorded"]

    def test_correction_into_attendance_is_checked_against_the_units(self) -> None:
        ep = with_authorization(Episode().in_program(), units=1)
        for i in range(2):
            ep.session(f"s{i}", T0 + (i + 1) * DAY)
        ep.now = T0 + 3 * DAY
        ep.attendance("s0", "attended")
        ep.attendance("s1", "excused")
        events = ep.run(
            ep.make(
                c.CorrectAttendance,
                session_id="s1",
                status=AttendanceStatus.ATTENDED,
                reason="was present",
            )
        )
        assert types(events) == ["attendance_corrected", "session_beyond_authorization"]

    def test_expiry_reminder_is_raised_before_the_authorization_ends(self) -> None:
        ep = with_authorization(Episode().referred(), days=30)
        assert next_deadline(ep.s) == T0 + 23 * DAY
        events = ep.tick(T0 + 23 * DAY)
        assert types(events) == ["authorization_expiring"]
        assert events[0].ends_at == T0 + 30 * DAY
        assert next_deadline(ep.s) is None

    def test_no_reminder_before_its_time(self) -> None:
        ep = with_authorization(Episode().referred(), days=30)
        assert ep.tick(T0 + 22 * DAY) == ()

    def test_authorization_that_ends_before_it_starts_is_refused(self) -> None:
        ep = Episode().referred()
        with pytest.raises(InvalidCommand, match="ends before it starts"):
            ep.decide(
                ep.make(
                    c.RecordAuthorization,
                    actor=SUPERVISOR,
                    authorization_id="a1",
                    payer_ref="p",
                    units=3,
                    starts_at=T0,
                    ends_at=T0,
                )
            )

    def test_authorization_id_cannot_be_reused(self) -> None:
        ep = with_authorization(Episode().referred())
        with pytest.raises(DuplicateId, match="new authorization id"):
            with_authorization(ep)
