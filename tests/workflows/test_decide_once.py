"""A command is decided once when nothing changed between its validator and its handler,
and decided again when something did; its request is decoded once, and the next deadline
of the state it leads to is worked out once."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from temporalio.client import Client

from domain import commands as c
from domain import deadlines
from domain.decider import DecisionContext
from domain.events import Event
from domain.state import EpisodeState
from domain.vocabulary import FIRST_RULES
from programs import load_catalog
from store.event_store import EventStore
from testing import samples
from testing.episodes import admitted
from workers.worker import build_worker
from workflows import care_pathway
from workflows.care_pathway import _Decision
from workflows.client import CommandRejected, EpisodeClient
from workflows.messages import CommandResult

CATALOG = load_catalog()
NOW = datetime(2026, 3, 2, 9, tzinfo=UTC)


@pytest.fixture
def decided(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The command id of every `decide` the workflow makes (an unsandboxed worker runs
    the module this test patches)."""
    calls: list[str] = []
    real = care_pathway.decide

    def counting(state: EpisodeState | None, command: c.Command, ctx: DecisionContext) -> Any:
        calls.append(command.command_id)
        return real(state, command, ctx)

    monkeypatch.setattr(care_pathway, "decide", counting)
    return calls


def _counted(monkeypatch: pytest.MonkeyPatch, name: str, *modules: ModuleType) -> list[Any]:
    """The first argument of every call to `<name>` made through the workflow's module (or
    through each of `modules`)."""
    calls: list[Any] = []
    for module in modules or (care_pathway,):
        real = getattr(module, name)

        def counting(*args: Any, real: Any = real) -> Any:
            calls.append(args[0])
            return real(*args)

        monkeypatch.setattr(module, name, counting)
    return calls


@contextlib.asynccontextmanager
async def _admitted_episode(
    client: Client, store: EventStore, ids: samples.CommandIds
) -> AsyncIterator[tuple[EpisodeClient, str, datetime]]:
    """An admitted episode on an unsandboxed worker of its own: (client, id, referral)."""
    queue = f"tq-{uuid.uuid4().hex[:12]}"
    async with build_worker(client, store, queue, sandboxed=False):
        episodes = EpisodeClient(client, queue)
        episode_id, referred_at = await admitted(episodes, ids)
        yield episodes, episode_id, referred_at


async def test_given_a_valid_command_when_it_is_applied_then_it_is_decided_once(
    client: Client, store: EventStore, decided: list[str]
) -> None:
    ids = samples.CommandIds("once")
    async with _admitted_episode(client, store, ids) as (episodes, episode_id, referred_at):
        decided.clear()
        command = samples.session(ids, "s1", referred_at + timedelta(days=1), hours=2)
        result = await episodes.send(episode_id, command)

    assert [e.type for e in result.events] == ["session_scheduled"]
    assert decided == [command.command_id]


async def test_given_a_refused_command_when_it_is_sent_then_only_the_validator_decides(
    client: Client, store: EventStore, decided: list[str]
) -> None:
    ids = samples.CommandIds("refused")
    async with _admitted_episode(client, store, ids) as (episodes, episode_id, referred_at):
        first = samples.session(ids, "s1", referred_at + timedelta(days=1), hours=2)
        await episodes.send(episode_id, first)
        decided.clear()
        again = samples.session(ids, "s1", referred_at + timedelta(days=2), hours=2)
        with pytest.raises(CommandRejected):
            await episodes.send(episode_id, again)

    assert decided == [again.command_id]


async def _one_session_counting(
    client: Client, store: EventStore, tag: str, count: Callable[[], list[Any]]
) -> tuple[c.Command, CommandResult, list[Any]]:
    """One session scheduled on an admitted episode, with `count()` started just before
    it: (the command, its result, what was counted)."""
    ids = samples.CommandIds(tag)
    async with _admitted_episode(client, store, ids) as (episodes, episode_id, referred_at):
        counted = count()
        command = samples.session(ids, "s1", referred_at + timedelta(days=1), hours=2)
        result = await episodes.send(episode_id, command)
    assert [e.type for e in result.events] == ["session_scheduled"]
    return command, result, counted


async def test_given_a_command_sent_under_its_name_when_it_is_applied_then_its_request_is_decoded_once(
    client: Client, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    command, _, decoded = await _one_session_counting(
        client, store, "decoded", lambda: _counted(monkeypatch, "_named_request")
    )

    assert decoded == [command.type]


async def test_given_a_command_when_it_is_applied_then_the_next_deadline_is_worked_out_once(
    client: Client, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, result, asked = await _one_session_counting(
        client,
        store,
        "deadline",
        lambda: _counted(monkeypatch, "next_deadline", care_pathway, deadlines),
    )

    # For the state the command led to, once for the search attributes and the timer.
    assert [state.version for state in asked] == [result.version]


def _decision() -> tuple[_Decision, c.Command, EpisodeState, DecisionContext]:
    ids = samples.CommandIds("holds")
    command = samples.session(ids, "s1", NOW + timedelta(days=1), hours=2)
    state = EpisodeState.model_construct()
    ctx = DecisionContext(episode_id="ep-1", now=NOW, programs=CATALOG)
    events: tuple[Event, ...] = ()
    return _Decision(command, state, ctx, events), command, state, ctx


def test_given_the_same_inputs_then_the_kept_decision_holds() -> None:
    kept, command, state, ctx = _decision()
    same_request = command.model_copy()

    assert kept.holds(command, state, ctx)
    assert kept.holds(same_request, state, DecisionContext("ep-1", NOW, CATALOG))


@pytest.mark.parametrize(
    "change",
    ["state", "clock", "programs", "rules", "episode", "command"],
)
def test_given_any_input_changed_then_the_kept_decision_does_not_hold(change: str) -> None:
    kept, command, state, ctx = _decision()
    other_state = EpisodeState.model_construct()
    other_command = command.model_copy(update={"hours": 3})
    changed = {
        "state": (command, other_state, ctx),
        "clock": (command, state, DecisionContext("ep-1", NOW + timedelta(seconds=1), CATALOG)),
        "programs": (command, state, DecisionContext("ep-1", NOW, load_catalog())),
        "rules": (
            command,
            state,
            DecisionContext("ep-1", NOW, CATALOG, rules_revision=FIRST_RULES),
        ),
        "episode": (command, state, DecisionContext("ep-2", NOW, CATALOG)),
        "command": (other_command, state, ctx),
    }[change]

    assert not kept.holds(*changed)
