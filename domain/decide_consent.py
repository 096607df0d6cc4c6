"""Decisions about consents (42 CFR Part 2) and payer authorizations.

A notification to family or an external party needs an active consent naming that
recipient and covering the scope disclosed; internal escalation notices to the care
team do not.
"""

from __future__ import annotations

from domain import commands_care as c
from domain import events as ev
from domain.emitter import Emitter
from domain.errors import (
    ConsentAlreadyRevoked,
    ConsentRequired,
    DuplicateId,
    InvalidCommand,
    UnknownReference,
)
from domain.horizons import AUTHORIZATION, CONSENT_EXPIRY
from domain.roles import CLINICAL, FRONT_DESK, INTAKE_AND_OVERSIGHT
from domain.rules import rule


@rule(c.RecordConsent, roles=FRONT_DESK)
def record_consent(em: Emitter, cmd: c.RecordConsent) -> None:
    if em.state.consent(cmd.consent_id) is not None:
        raise DuplicateId(
            f"consent {cmd.consent_id!r} already exists: use a new consent id "
            "(revoke the old consent to replace it)"
        )
    if cmd.expires_at <= em.now:
        raise InvalidCommand("the consent's expiry is in the past: give a future expires_at")
    CONSENT_EXPIRY.check(em.now, cmd.expires_at, "expires_at")
    em.emit(
        ev.ConsentRecorded,
        consent_id=cmd.consent_id,
        recipient_ref=cmd.recipient_ref,
        recipient_kind=cmd.recipient_kind,
        scopes=tuple(dict.fromkeys(cmd.scopes)),
        expires_at=cmd.expires_at,
    )


@rule(c.RevokeConsent, roles=FRONT_DESK)
def revoke_consent(em: Emitter, cmd: c.RevokeConsent) -> None:
    consent = em.state.consent(cmd.consent_id)
    if consent is None:
        raise UnknownReference(
            f"episode {em.state.episode_id} has no consent {cmd.consent_id!r}: check the id"
        )
    if consent.revoked:
        raise ConsentAlreadyRevoked(f"consent {cmd.consent_id!r} is already revoked")
    em.emit(ev.ConsentRevoked, consent_id=cmd.consent_id)


@rule(c.NotifyParty, roles=CLINICAL)
def notify_party(em: Emitter, cmd: c.NotifyParty) -> None:
    consent = next(
        (
            ci
            for ci in em.state.consents
            if ci.recipient_kind is cmd.recipient_kind
            and ci.covers(cmd.recipient_ref, cmd.scope, em.now)
        ),
        None,
    )
    if consent is None:
        raise ConsentRequired(
            f"no active consent lets CarePath disclose {cmd.scope.value} to this "
            f"{cmd.recipient_kind.value} recipient: record the client's signed consent first"
        )
    em.emit(
        ev.PartyNotified,
        consent_id=consent.consent_id,
        recipient_ref=cmd.recipient_ref,
        recipient_kind=cmd.recipient_kind,
        scope=cmd.scope,
    )


@rule(c.RecordAuthorization, roles=INTAKE_AND_OVERSIGHT)
def record_authorization(em: Emitter, cmd: c.RecordAuthorization) -> None:
    if any(a.authorization_id == cmd.authorization_id for a in em.state.authorizations):
        raise DuplicateId(
            f"authorization {cmd.authorization_id!r} already exists: use a new authorization id"
        )
    AUTHORIZATION.check(em.now, cmd.starts_at, "starts_at")
    AUTHORIZATION.check(em.now, cmd.ends_at, "ends_at")
    if cmd.ends_at <= cmd.starts_at:
        raise InvalidCommand("the authorization ends before it starts: check starts_at and ends_at")
    reminder = em.program.authorizations.reminder_before_expiry
    em.emit(
        ev.AuthorizationRecorded,
        authorization_id=cmd.authorization_id,
        payer_ref=cmd.payer_ref,
        level_of_care=cmd.level_of_care,
        units=cmd.units,
        starts_at=cmd.starts_at,
        ends_at=cmd.ends_at,
        remind_at=max(cmd.ends_at - reminder, cmd.starts_at),
    )
