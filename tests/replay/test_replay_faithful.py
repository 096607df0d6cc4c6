"""Replay is faithful to the record: the replayed workflow holds what the store held.

Replaying without a non-determinism error is not enough. During replay the update handlers
run the decider again, and a decider that now produces other content for an old command
(a field lower-cased, a default changed) issues the same Temporal commands, so the SDK's
Replayer is satisfied while the replayed state silently differs from PostgreSQL's.

Two checks close that gap:
- every committed history is replayed with an interceptor that keeps what the replayed
  code answered and the state it held after each command. The events recorded in the
  history's command results must be exactly the events the replayed code answered with,
  and, folded in order over the run's starting snapshot, must give the state the replayed
  workflow holds (wherever the recorded results cover every seq so far: a tick's events
  are in the store but in no command result);
- histories recorded since the append reports what the store holds (`stored_digests`)
  fail by themselves: the workflow compares, and fails its task with `StoreDivergence`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

import domain.decider
from domain.decider import evolve
from domain.events import ClientReferred, Event, dump_event
from domain.state import EpisodeState
from testing.payload_keys import TEST_CONVERTER
from workers.replay import load_history, replay
from workflows.messages import CarePathwayInput, CommandResult

HISTORIES_DIR = Path(__file__).parent / "histories"
HISTORIES = sorted(HISTORIES_DIR.glob("*.json"))
# Recorded after the append began to report the stored events' digests.
WITH_DIGESTS = (
    HISTORIES_DIR / "test_refused_append_fails_the_command_and_the_next_command_succeeds.json"
)


@dataclasses.dataclass
class Replayed:
    """What the replayed code of one run produced: each command's answer, and the state
    the workflow held right after answering it."""

    results: dict[str, CommandResult] = dataclasses.field(default_factory=dict)
    states: dict[str, EpisodeState | None] = dataclasses.field(default_factory=dict)


# Filled from inside the workflow sandbox: the interceptor classes are handed in as they
# are, so this module's globals are the test's own.
REPLAYED: dict[str, Replayed] = {}


def _this_run() -> Replayed:
    return REPLAYED.setdefault(workflow.info().run_id, Replayed())


class _Inbound(WorkflowInboundInterceptor):
    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        result = await super().handle_update_handler(input)
        if isinstance(result, CommandResult):
            run = _this_run()
            run.results[input.id] = result
            # The workflow's own state query, called as a method: what it holds now.
            run.states[input.id] = workflow.instance().state().state
        return result


class KeepWhatReplayAnswers(Interceptor):
    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        return _Inbound


async def recorded_results(history: WorkflowHistory) -> list[tuple[str, CommandResult]]:
    """(update id, result) of every command the history answered successfully, decrypted
    with the test key as the replayer decrypts them."""
    found = []
    for event in history.events:
        if not event.HasField("workflow_execution_update_completed_event_attributes"):
            continue
        completed = event.workflow_execution_update_completed_event_attributes
        if completed.outcome.HasField("success"):
            [result] = await TEST_CONVERTER.decode(
                completed.outcome.success.payloads, [CommandResult]
            )
            found.append((completed.meta.update_id, result))
    return found


async def starting_snapshot(history: WorkflowHistory) -> EpisodeState | None:
    """The state the run started from (carried from the run before it), if any."""
    started = history.events[0].workflow_execution_started_event_attributes
    [inp] = await TEST_CONVERTER.decode(started.input.payloads, [CarePathwayInput])
    return inp.snapshot


async def differences(history: WorkflowHistory, replayed: Replayed) -> list[str]:
    """Every way the replayed run differs from the record, each naming seq and field."""
    found: list[str] = []
    folded = await starting_snapshot(history)
    covered = True  # the recorded results hold every event so far
    for update_id, recorded in await recorded_results(history):
        mine = replayed.results.get(update_id)
        if mine is None:
            found.append(f"update {update_id}: answered when recorded, not when replayed")
            continue
        found += [f"update {update_id}: {text}" for text in _event_differences(recorded, mine)]
        if (recorded.version, recorded.stage) != (mine.version, mine.stage):
            found.append(
                f"update {update_id}: recorded version {recorded.version} ({recorded.stage}),"
                f" replayed {mine.version} ({mine.stage})"
            )
        version = folded.version if folded is not None else 0
        for event in recorded.events:
            if event.seq == version + 1:
                folded, version = evolve(folded, event), event.seq
            elif event.seq > version:
                covered = False  # a tick's events came in between
        state = replayed.states.get(update_id)
        if covered and state is not None and state.version == version and state != folded:
            found.append(
                f"update {update_id}: the recorded events fold to another state than the "
                f"replayed workflow holds ({_first_different_field(folded, state)})"
            )
    return found


def _first_different_field(recorded: EpisodeState | None, replayed: EpisodeState) -> str:
    was = recorded.model_dump(mode="json") if recorded is not None else {}
    now = replayed.model_dump(mode="json")
    name = next(k for k in now if was.get(k) != now[k])
    return f"field {name}: recorded {was.get(name)!r}, replayed {now[name]!r}"


def _event_differences(recorded: CommandResult, replayed: CommandResult) -> Iterator[str]:
    if [e.seq for e in recorded.events] != [e.seq for e in replayed.events]:
        yield (
            f"recorded seqs {[e.seq for e in recorded.events]}, "
            f"replayed {[e.seq for e in replayed.events]}"
        )
        return
    for ours, theirs in zip(recorded.events, replayed.events, strict=True):
        yield from _field_differences(ours, theirs)


def _field_differences(recorded: Event, replayed: Event) -> Iterator[str]:
    was, now = dump_event(recorded), dump_event(replayed)
    for name in sorted(set(was) | set(now)):
        if was.get(name) != now.get(name):
            yield (
                f"seq {recorded.seq} ({recorded.type}) field {name}: recorded "
                f"{was.get(name)!r}, replayed {now.get(name)!r}"
            )


async def replay_and_compare(paths: list[Path]) -> dict[str, list[str]]:
    """Replay each history; map its file name to its differences from the record (a replay
    failure counts as one)."""
    REPLAYED.clear()
    histories = {path.stem: load_history(path) for path in paths}
    failures = await replay(
        histories.values(), interceptors=[KeepWhatReplayAnswers()], data_converter=TEST_CONVERTER
    )
    report: dict[str, list[str]] = {}
    for name, history in histories.items():
        failure = failures[history.run_id]
        if failure is not None:
            report[name] = [f"replay failed: {failure}"]
        else:
            report[name] = await differences(history, REPLAYED.get(history.run_id, Replayed()))
    return report


def test_some_histories_record_the_digests_of_what_the_store_holds() -> None:
    assert WITH_DIGESTS.exists(), "run `make record-histories` and commit the new files"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replayed_workflow_answers_every_recorded_command_as_recorded(path: Path) -> None:
    report = await replay_and_compare([path])

    assert report[path.stem] == []


class TestADeciderThatChangesEventContent:
    """Lower-casing one field of one event - no new Temporal command, no replay error from
    the SDK - now fails the replay tier, naming the episode's seq and the field."""

    @pytest.fixture
    def lower_case_client_refs(self, monkeypatch: pytest.MonkeyPatch) -> None:
        decide = domain.decider.decide

        def divergent(*args: Any) -> tuple[Event, ...]:
            return tuple(
                e.model_copy(update={"client_ref": e.client_ref.lower()})
                if isinstance(e, ClientReferred)
                else e
                for e in decide(*args)
            )

        # The workflow module is imported afresh in the sandbox for every replayed run,
        # and takes `decide` from the (shared, passed-through) domain package.
        monkeypatch.setattr(domain.decider, "decide", divergent)

    @pytest.mark.usefixtures("lower_case_client_refs")
    async def test_recorded_results_name_the_changed_field(self) -> None:
        referral = HISTORIES_DIR / "test_referral_persists_client_referred_before_answering.json"
        update_id = (await recorded_results(load_history(referral)))[0][0]

        report = await replay_and_compare([referral])

        assert report[referral.stem] == [
            f"update {update_id}: seq 1 (client_referred) field client_ref: "
            "recorded 'MRN-1001', replayed 'mrn-1001'",
            f"update {update_id}: the recorded events fold to another state than the "
            "replayed workflow holds (field client_ref: recorded 'MRN-1001', "
            "replayed 'mrn-1001')",
        ]

    @pytest.mark.usefixtures("lower_case_client_refs")
    async def test_a_history_with_store_digests_fails_its_workflow_task(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        history = load_history(WITH_DIGESTS)

        with caplog.at_level(logging.WARNING):
            failures = await replay([history], data_converter=TEST_CONVERTER)

        # The task failure's text travels encrypted; the worker's own log names the cause.
        assert "Encoded failure" in str(failures[history.run_id])
        causes = [r.exc_info[1] for r in caplog.records if r.exc_info and r.exc_info[1]]
        assert any(
            type(cause).__name__ == "StoreDivergence"
            and f"episode {_episode_id(history)}: seq 1 (client_referred)" in str(cause)
            for cause in causes
        )

    @pytest.mark.usefixtures("lower_case_client_refs")
    async def test_every_history_whose_run_decided_a_referral_now_fails(self) -> None:
        report = await replay_and_compare(HISTORIES)

        # A first run decides its referral; a later run answers a repeat from the store.
        decided_referral = {
            path.stem
            for path, history in ((p, load_history(p)) for p in HISTORIES)
            if await starting_snapshot(history) is None
            and any(
                e.type == "client_referred"
                for _, result in await recorded_results(history)
                for e in result.events
            )
        }
        assert len(decided_referral) > len(HISTORIES) / 2
        assert {name for name, found in report.items() if found} == decided_referral


def _episode_id(history: WorkflowHistory) -> str:
    return history.workflow_id.removeprefix("episode-")
