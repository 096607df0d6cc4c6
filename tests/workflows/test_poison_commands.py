"""No value of any field wedges an episode: arbitrary commands through the real workflow.

For every registered command (`domain.rules.registered()`, so a new command is covered as
soon as it has a rule), hypothesis builds bodies whose every field holds an arbitrary value
of the field's kind: text with control characters or far too long, moments from year 1 to
9999, naive or at odd offsets, huge integers, NaN, lists far too long, unknown enum
members, nested plans built the same way. Each goes to a running episode: through the
command types when they accept it (as the API sends it), and raw to the workflow when they
do not (its payload converter is the second boundary). Whatever the answer, the episode
must then still accept a valid command, within a deadline.
"""

from __future__ import annotations

import asyncio
import enum
import types
import typing
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from domain import commands as c
from domain.rules import Rule, registered
from domain.state import Stage
from domain.vocabulary import MAX_ITEMS, ConsentScope, RecipientKind
from programs import load_catalog
from testing import samples
from testing.samples import dated_example
from workflows.client import CommandRejected, EpisodeClient
from workflows.messages import COMMAND_UPDATE, CommandResult, workflow_id_for

ADULT = load_catalog().get("adult-iop")
# Stages after which the episode takes nothing more: an arbitrary command that happened
# to be valid (a discharge) closes it, and the next example needs a new one.
CLOSED = {Stage.DISCHARGED.value, Stage.REFERRED_OUT.value}
# Long enough for a command on a busy machine; a wedged episode never answers at all.
DEADLINE = timedelta(seconds=20)
# The largest command sent raw: what a Temporal server accepts as one payload (the test
# server accepts more). A refused update goes back to the server with its request and
# the refusal in one message of at most 4 MB, so the refusal's text must stay small
# however many items are wrong (`domain.vocabulary.items` checks lists fail-fast).
RAW_LIMIT = 2 * 1024 * 1024

_POISON_TEXT = [
    "",
    " ",
    "a\x00b",
    "\x1b[2J\x1b[H",
    "bell\x07",
    "del\x7f",
    "c1\x85",
    "line\nbreak",
    "tab\there",
    "cr\roverwrite",
    "\u2028",
    "\ud800",
    "x" * 201,
]
_TEXT = st.one_of(
    st.from_regex(r"[a-z0-9.-]{1,12}", fullmatch=True),
    st.text(max_size=40),
    st.sampled_from(_POISON_TEXT),
    st.text(alphabet=st.characters(max_codepoint=0x9F), min_size=1, max_size=8),
    # Far too long: just past the longest kind of text, and a hundred thousand characters.
    st.sampled_from([2001, 100_000]).map(lambda size: "é" * size),
)
# What a list of a thousand items repeats: kept small, so the list is long, not huge.
_SHORT_TEXT = st.text(max_size=5)
_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12)), None])


def _moments(now: datetime) -> st.SearchStrategy[datetime]:
    return st.one_of(
        st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=_ZONES
        ),
        st.sampled_from(
            [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)]
        ),
        # Around the horizons: up to three years either way of the episode's clock.
        st.integers(-3 * 365, 3 * 365).map(lambda days: now + timedelta(days=days, minutes=1)),
    )


def _values(annotation: Any, now: datetime, small: bool = False) -> st.SearchStrategy[Any]:
    """Arbitrary values of a field's kind, whatever constraints its type declares.

    `small` keeps each value short: the item a thousand-long list repeats.
    """
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _values(args[0], now, small)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_values(arg, now, small) for arg in args))
    if origin is tuple:
        item = _values(args[0], now, small)
        short_item = _values(args[0], now, small=True)
        lists = [
            st.lists(item, max_size=3),
            st.lists(short_item, min_size=MAX_ITEMS + 1, max_size=MAX_ITEMS + 4),
        ]
        if not small:
            lists.append(short_item.map(lambda value: [value] * 1000))
        return st.one_of(*lists)
    if origin is typing.Literal:
        return st.sampled_from(args)
    if annotation is type(None):
        return st.none()
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.one_of(st.integers(), st.sampled_from([0, -1, 10**30]))
    if annotation is float:
        return st.floats(allow_nan=True, allow_infinity=True)
    if annotation is str:
        return _SHORT_TEXT if small else _TEXT
    if annotation is datetime:
        return _moments(now)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return st.one_of(st.sampled_from([m.value for m in annotation]), _SHORT_TEXT)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return _body(annotation, now, small)
    raise TypeError(f"no strategy for {annotation!r}: teach _values this kind of field")


def _body(model: type[BaseModel], now: datetime, small: bool) -> st.SearchStrategy[dict[str, Any]]:
    # Fields the server fills in from its own validated catalog are not the caller's.
    server = getattr(model, "server_fields", frozenset())
    fields = {n: f for n, f in model.model_fields.items() if n not in server}
    return st.fixed_dictionaries(
        {n: _values(f.annotation, now, small) for n, f in fields.items() if f.is_required()},
        optional={
            n: _values(f.annotation, now, small) for n, f in fields.items() if not f.is_required()
        },
    )


def _command(rule: Rule, now: datetime) -> st.SearchStrategy[dict[str, Any]]:
    """Commands of `rule`'s kind with arbitrary fields: every field at once, or (for a
    command with a request example) one field of an otherwise valid command."""
    fields = {
        n: f
        for n, f in rule.command.model_fields.items()
        if n != "type" and n not in rule.command.server_fields
    }
    every_field = _body(rule.command, now, small=False).map(
        lambda body: {**body, "type": rule.kind}
    )
    if rule.command.endpoint is None:
        return every_field
    role = sorted(rule.roles)[0]
    valid = {
        **dated_example(rule.command.endpoint.example, now),
        "type": rule.kind,
        "actor": {"user_id": "hy.pothesis", "role": role.value},
    }

    def one_field(name: str) -> st.SearchStrategy[dict[str, Any]]:
        value = _values(fields[name].annotation, now)
        ids = st.uuids().map(lambda u: f"poison-{u}")
        return st.tuples(ids, value).map(lambda d: {**valid, "command_id": d[0], name: d[1]})

    return st.one_of(every_field, st.sampled_from(sorted(fields)).flatmap(one_field))


class Episode:
    """The episode the examples hit, replaced by a fresh one when a command closed it."""

    def __init__(self, episodes: EpisodeClient, env: WorkflowEnvironment) -> None:
        self.episodes = episodes
        self.env = env
        self.episode_id = ""
        self.probes = 0
        self._commands: st.SearchStrategy[dict[str, Any]] | None = None

    async def commands(self) -> st.SearchStrategy[dict[str, Any]]:
        """Any registered command, its moments drawn around the server's clock."""
        if self._commands is None:
            now = await self.env.get_current_time()
            self._commands = st.one_of(*(_command(rule, now) for rule in registered()))
        return self._commands

    async def open(self) -> None:
        ids = samples.CommandIds(f"poison-{uuid.uuid4().hex[:8]}")
        self.episode_id = str(uuid.uuid4())
        await self.episodes.refer(self.episode_id, samples.referral(ids), ADULT)
        for command in samples.admission(ids):
            await self.episodes.send(self.episode_id, command)

    async def attempt(self, data: dict[str, Any]) -> CommandResult | None:
        """Send `data` as the API would, or raw when the command types refuse it."""
        try:
            command = c.COMMAND_ADAPTER.validate_python(data)
        except ValidationError:
            return await self._raw(data)
        try:
            return await self.episodes.send(self.episode_id, command)
        except CommandRejected:
            return None

    async def _raw(self, data: dict[str, Any]) -> CommandResult | None:
        handle = self.env.client.get_workflow_handle(workflow_id_for(self.episode_id))
        try:
            payloads = await self.env.client.data_converter.encode([data])
        except PydanticSerializationError:
            return None  # not JSON at all (a lone surrogate): no client can send it
        if sum(len(p.data) for p in payloads) > RAW_LIMIT:
            return None
        try:
            result: CommandResult = await handle.execute_update(
                COMMAND_UPDATE,
                {"command": data, "include_state": False},
                id=f"raw-{uuid.uuid4()}",
                result_type=CommandResult,
                rpc_timeout=DEADLINE,
            )
        except WorkflowUpdateFailedError:
            return None  # refused when the workflow decoded it: nothing entered history
        return result

    async def probe(self) -> None:
        """A valid command in any open stage: a consent with a new id, expiring soon."""
        self.probes += 1
        now = await self.env.get_current_time()
        consent = c.RecordConsent(
            command_id=f"probe-{uuid.uuid4()}",
            actor=samples.INTAKE,
            consent_id=f"probe-{self.probes}",
            recipient_ref="family-contact-1",
            recipient_kind=RecipientKind.FAMILY,
            scopes=(ConsentScope.ATTENDANCE,),
            expires_at=now + timedelta(days=30),
        )
        result = await self.episodes.send(self.episode_id, consent)
        assert [e.type for e in result.events] == ["consent_recorded"]


@pytest.fixture
async def poisoned(make_episodes: Any, time_skipping_env: WorkflowEnvironment) -> Episode:
    episode = Episode(make_episodes(rpc_timeout=DEADLINE), time_skipping_env)
    await episode.open()
    return episode


def test_every_command_kind_has_a_strategy() -> None:
    now = datetime.now(UTC)
    for rule in registered():
        _command(rule, now)  # raises TypeError for a field kind without a strategy


@given(data=st.data())
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    # No shrinking: against a wedged episode every attempt would wait out the deadline.
    phases=(Phase.explicit, Phase.generate),
    # One episode serves every example (it is replaced only once a command closed it).
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
async def test_no_value_of_any_field_wedges_the_episode(
    poisoned: Episode, data: st.DataObject
) -> None:
    command = data.draw(await poisoned.commands(), label="command")

    # A wedged episode answers nothing: each step has the deadline, not only each RPC.
    async with asyncio.timeout(DEADLINE.total_seconds()):
        result = await poisoned.attempt(command)
        if result is not None and result.stage in CLOSED:
            await poisoned.open()
    async with asyncio.timeout(DEADLINE.total_seconds()):
        await poisoned.probe()
