"""Request fingerprints, event digests and the workflow's command-id ledger: pure functions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain import commands as c
from domain.canonical import GENESIS_HASH, canonical_json, chain_hash, event_digests, payload_digest
from domain.events import dump_event
from domain.idempotency import IdempotencyKeyReused, command_fingerprint, reused_key
from testing import samples
from testing.sample_streams import episode_events
from workflows.command_ledger import FILTER_HASHES, CommandLedger
from workflows.messages import AppliedCommandIds, update_id_for

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _session(command_id: str = "cmd-1", hours: float = 3) -> c.ScheduleSession:
    return samples.session(lambda: command_id, "s1", START, hours=hours)  # type: ignore[arg-type]


class TestCommandFingerprint:
    """Two requests are the same request when everything but the command id is the same."""

    def test_the_command_id_is_not_part_of_the_request(self) -> None:
        assert command_fingerprint(_session("a")) == command_fingerprint(_session("b"))

    def test_any_other_field_is(self) -> None:
        assert command_fingerprint(_session(hours=3)) != command_fingerprint(_session(hours=2))

    def test_the_actor_is(self) -> None:
        session = _session()
        other = session.model_copy(update={"actor": samples.SUPERVISOR})

        assert command_fingerprint(session) != command_fingerprint(other)

    def test_commands_of_different_kinds_never_share_one(self) -> None:
        admit = c.AdmitClient(command_id="x", actor=samples.CLINICIAN)
        screen = c.StartScreening(command_id="x", actor=samples.CLINICIAN)

        assert command_fingerprint(admit) != command_fingerprint(screen)

    def test_a_field_left_at_its_default_is_the_same_as_one_never_sent(self) -> None:
        # A field added later with a default leaves earlier requests' fingerprints alone.
        silent = c.StepDown(command_id="x", actor=samples.CLINICIAN)
        explicit = c.StepDown(command_id="x", actor=samples.CLINICIAN, reason=None)

        assert command_fingerprint(silent) == command_fingerprint(explicit)

    def test_it_is_the_sha256_of_the_canonical_request(self) -> None:
        fingerprint = command_fingerprint(_session())

        assert len(fingerprint) == 64
        assert set(fingerprint) <= set("0123456789abcdef")

    def test_the_update_id_carries_the_command_id_and_the_request(self) -> None:
        session = _session("cmd-7")

        assert update_id_for(session) == f"cmd-7#{command_fingerprint(session)[:32]}"
        assert update_id_for(session) != update_id_for(_session("cmd-7", hours=2))

    def test_a_reused_key_is_refused_with_a_message_that_says_what_to_do(self) -> None:
        err = reused_key("key-1")

        assert isinstance(err, IdempotencyKeyReused)
        assert err.code == "IdempotencyKeyReused"
        assert "'key-1'" in err.message
        assert "new key" in err.message


class TestCanonicalDigests:
    """The store and the workflow compute the same digest of the same event."""

    def test_canonical_json_sorts_keys_and_drops_whitespace(self) -> None:
        assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()

    def test_canonical_json_refuses_nan(self) -> None:
        with pytest.raises(ValueError, match="JSON compliant"):
            canonical_json({"hours": float("nan")})

    def test_event_digest_is_the_digest_of_its_stored_payload(self) -> None:
        event = episode_events("ep-1", sessions=1)[0]

        assert event_digests([event]) == (payload_digest(dump_event(event)),)

    def test_a_changed_field_changes_the_digest(self) -> None:
        event = episode_events("ep-1", sessions=1)[0]
        changed = event.model_copy(update={"command_id": "another"})

        assert event_digests([event]) != event_digests([changed])

    def test_the_chain_follows_the_genesis_hash(self) -> None:
        payload = dump_event(episode_events("ep-1", sessions=1)[0])

        assert chain_hash(GENESIS_HASH, payload) != chain_hash("1" * 64, payload)


class TestCommandLedger:
    """This run's commands in full, earlier runs' ids in a filter carried to the next run."""

    def test_a_command_this_run_applied_is_known_with_its_events(self) -> None:
        ledger = CommandLedger(None)
        events = tuple(episode_events("ep-1", sessions=1)[:1])

        ledger.record("cmd-1", "f" * 64, events)

        applied = ledger.get("cmd-1")
        assert applied is not None
        assert (applied.fingerprint, applied.events) == ("f" * 64, events)
        assert ledger.get("cmd-2") is None

    def test_a_second_record_of_the_same_id_keeps_the_first(self) -> None:
        ledger = CommandLedger(None)
        ledger.record("cmd-1", "a" * 64, ())

        ledger.record("cmd-1", None, tuple(episode_events("ep-1", sessions=1)[:1]))

        applied = ledger.get("cmd-1")
        assert applied is not None
        assert (applied.fingerprint, applied.events) == ("a" * 64, ())

    def test_the_next_run_knows_every_id_applied_so_far_and_none_other(self) -> None:
        ledger = CommandLedger(None)
        applied = [f"cmd-{n}" for n in range(500)]
        for command_id in applied:
            ledger.record(command_id, None, ())

        carried = ledger.carried()
        next_run = CommandLedger(carried)

        assert carried.count == 500
        assert all(next_run.maybe_applied_earlier(command_id) for command_id in applied)
        fresh = [f"new-{n}" for n in range(5000)]
        assert sum(next_run.maybe_applied_earlier(command_id) for command_id in fresh) <= 1
        # The next run's own record starts empty: it answers repeats through the store.
        assert next_run.get("cmd-1") is None

    def test_the_carried_filter_stays_small_while_sparse(self) -> None:
        ledger = CommandLedger(None)
        for n in range(300):
            ledger.record(f"cmd-{n}", None, ())

        assert len(ledger.carried().bits) < 4_000

    def test_a_filter_of_another_shape_is_ignored_rather_than_misread(self) -> None:
        ledger = CommandLedger(None)
        ledger.record("cmd-1", None, ())
        carried = ledger.carried()
        other = AppliedCommandIds(bits=carried.bits, hashes=FILTER_HASHES + 1, count=1)

        assert not CommandLedger(other).maybe_applied_earlier("cmd-1")


def test_every_request_has_a_fingerprint_even_one_the_decider_will_refuse() -> None:
    # The workflow fingerprints a request before judging it: this must never raise.
    odd = _session().model_copy(update={"hours": float("nan"), "session_id": "a\ud800b"})

    assert len(command_fingerprint(odd)) == 64
