"""Server time of the staff console's pages with 1,000 episodes in the read models, against
the API's JSON caseload in the same run.

The read models are filled fast: a few synthetic streams (`testing.sample_streams`, from
the decider) are built once, dated so that their sessions end today or yesterday on the
clinic's clock, and copied under 1,000 episode ids (each with its own client reference);
the copies are appended through `EventStore` and folded by `Projector.catch_up()`. Of the
episodes, one in ten stops before admission (referred, screened or assessed: the intake
board), and of the others about half have a session today whose attendance is not yet
recorded (the Today page offers its choices). All belong to one clinician, the user the
pages are rendered for, so each page shows its longest list (the caseload and the lists
cap at 500 rows).

The app is `carepath api`'s (`testing.stack.api_app`: users-file token, access log, CSP,
console), called in-process through httpx's ASGI transport with a signed-in session
cookie; the time measured is the app's own, from the call of the ASGI app to the end of
its response (no network, no client). Pages are requested in rounds, one of each per
round in turn, after warm-up rounds. The baseline is `GET /caseload` (JSON) for the same
user. The episode chart (`/console/episodes/{id}`) is measured when `api.console.chart`
exists.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import re
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from api.auth import UsersFileAuthenticator
from bench._stack import percentile, stack
from bench.table import Row
from domain.events import Event
from store.event_store import EventStore
from store.projections import Projector
from testing import samples
from testing.episodes import admitted
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events
from testing.stack import api_app
from workers.worker import build_worker
from workflows.client import EpisodeClient

EPISODES = 1000
# (measured rounds, warm-up rounds, sessions per episode), by BENCH_SCALE.
PLANS = {"small": (40, 5, 4), "full": (200, 20, 12)}
TOKEN = "bench-token-console-5b2e"
GOAL = "< 200 ms"
PAGES = ("caseload", "tasks", "today", "intake", "chart")
PATHS = {
    "caseload": "/console/",
    "tasks": "/console/tasks",
    "today": "/console/today",
    "intake": "/console/intake",
    "chart": "/console/episodes/{episode_id}",
}
BASELINE = "/caseload"
# One episode in INTAKE_EVERY stops before admission, at one of these events.
INTAKE_EVERY = 10
INTAKE_CUTS = ("client_referred", "screening_recorded", "assessment_recorded")
APPEND_CONCURRENCY = 8


def _rows() -> tuple[Row, ...]:
    rows = []
    for page in PAGES:
        for q in ("p50", "p99"):
            rows.append(
                Row(
                    measure=f"console page {page} ({PATHS[page]}), 1,000 episodes, {q}",
                    baseline="GET /caseload (JSON)",
                    baseline_value=f"api_caseload_{q}_ms",
                    value=f"console_{page}_{q}_ms",
                    goal=GOAL,
                )
            )
    return tuple(rows)


ROWS = _rows()


# --- the data ----------------------------------------------------------------------------


def _cut_before_last(events: list[Event], kind: str) -> list[Event]:
    """The stream up to (not including) its last event of type `kind`."""
    last = max(i for i, event in enumerate(events) if event.type == kind)
    return events[:last]


def _cut_after_first(events: list[Event], kind: str) -> list[Event]:
    first = next(i for i, event in enumerate(events) if event.type == kind)
    return events[: first + 1]


def templates(sessions: int, now: datetime) -> dict[str, list[Event]]:
    """Streams to copy: one whose last session is today (attendance not yet recorded),
    one whose last session was yesterday, and the intake prefixes."""
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # episode_events puts session i at 09:00 on day 1 + 2i after `start`.
    last_day = 1 + 2 * (sessions - 1)
    today_stream = episode_events(
        "template-today", sessions=sessions, start=today - timedelta(days=last_day)
    )
    past_stream = episode_events(
        "template-past", sessions=sessions, start=today - timedelta(days=last_day + 1)
    )
    out = {
        "today": _cut_before_last(today_stream, "attendance_recorded"),
        "past": past_stream,
    }
    for kind in INTAKE_CUTS:
        out[kind] = _cut_after_first(past_stream, kind)
    return out


def _copy(events: list[Event], episode_id: str, client_ref: str) -> list[Event]:
    copied = []
    for event in events:
        update: dict[str, Any] = {"episode_id": episode_id}
        if event.type == "client_referred":
            update["client_ref"] = client_ref
        copied.append(event.model_copy(update=update))
    return copied


def _template_of(index: int) -> str:
    if index % INTAKE_EVERY == 0:
        return INTAKE_CUTS[(index // INTAKE_EVERY) % len(INTAKE_CUTS)]
    return "today" if index % 2 else "past"


async def fill(store: EventStore, count: int, sessions: int) -> list[str]:
    """Append `count` episodes copied from the templates; their ids."""
    streams = templates(sessions, datetime.now(UTC))
    ids = [str(uuid.uuid4()) for _ in range(count)]
    gate = asyncio.Semaphore(APPEND_CONCURRENCY)

    async def one(index: int, episode_id: str) -> None:
        events = _copy(streams[_template_of(index)], episode_id, f"MRN-{index + 1:06d}")
        async with gate:
            await store.append(episode_id, events)

    await asyncio.gather(*(one(i, episode_id) for i, episode_id in enumerate(ids)))
    return ids


# --- timing the app ---------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Asgi = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Any]


class Timed:
    """An ASGI app that records how long the app it wraps took for the last request."""

    def __init__(self, app: Asgi) -> None:
        self.app = app
        self.last_ms = 0.0

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        started = time.perf_counter()
        await self.app(scope, receive, send)
        self.last_ms = (time.perf_counter() - started) * 1000


def _authenticator(directory: Path) -> UsersFileAuthenticator:
    path = directory / "users.yaml"
    user = {"user_id": samples.CLINICIAN.user_id, "role": "clinician", "programs": ["adult-iop"]}
    path.write_text(yaml.safe_dump({"tokens": {TOKEN: user}}), encoding="utf-8")
    return UsersFileAuthenticator(path)


async def sign_in(http: httpx.AsyncClient) -> None:
    form = await http.get("/console/signin")
    nonce = re.search(r'name="nonce" value="([^"]*)"', form.text)
    assert nonce, "no sign-in nonce"
    answer = await http.post(
        "/console/signin", data={"nonce": nonce.group(1), "next": "", "token": TOKEN}
    )
    assert answer.status_code == 303, answer.text


Get = Callable[[], Awaitable[httpx.Response]]


def _has_chart() -> bool:
    return importlib.util.find_spec("api.console.chart") is not None


async def _charted_episode(episodes: EpisodeClient) -> str:
    """An episode with a workflow (the chart asks it for its state): admitted, with a
    week of sessions ahead."""
    ids = samples.CommandIds("bench-chart")
    episode_id, referred_at = await admitted(episodes, ids, client_ref="MRN-CHART")
    first = referred_at.replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    for i in range(5):
        await episodes.send(episode_id, samples.session(ids, f"c{i}", first + timedelta(days=i)))
    return episode_id


async def _measure(
    app: Any, paths: dict[str, str], rounds: int, warmup: int, out: dict[str, float]
) -> dict[str, list[float]]:
    """Each page's and the baseline's server times, in rounds after warm-up rounds."""
    timed = Timed(app)
    transport = httpx.ASGITransport(app=timed)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://bench.test") as browser,
        httpx.AsyncClient(
            transport=transport,
            base_url="http://bench.test",
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as api,
    ):
        await sign_in(browser)

        def getter(client: httpx.AsyncClient, path: str) -> Get:
            return lambda: client.get(path)

        requests = {page: getter(browser, path) for page, path in paths.items()}
        requests["api_caseload"] = getter(api, BASELINE)
        times: dict[str, list[float]] = {name: [] for name in requests}
        names = list(requests)
        for round_ in range(warmup + rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                response = await requests[name]()
                assert response.status_code == 200, (name, response.status_code)
                if round_ >= warmup:
                    times[name].append(timed.last_ms)
                elif round_ == 0 and name != "api_caseload":
                    out[f"console_{name}_table_rows"] = float(
                        response.text.count("<tr") - response.text.count("<thead")
                    )
    return times


async def run(scale: str = "small") -> dict[str, float]:
    rounds, warmup, sessions = PLANS[scale]
    out: dict[str, float] = {"console_episodes": float(EPISODES)}
    async with stack() as s:
        store = EventStore(s.pool, chain_key=CHAIN_KEY)
        started = time.perf_counter()
        await fill(store, EPISODES, sessions)
        out["console_fill_s"] = time.perf_counter() - started
        started = time.perf_counter()
        out["console_events_folded"] = float(await Projector(s.pool).catch_up())
        out["console_fold_s"] = time.perf_counter() - started
        queue = f"bench-console-{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory(prefix="carepath-bench-console-") as tmp:
            app = api_app(s.env.client, store, queue, _authenticator(Path(tmp)))
            async with build_worker(s.env.client, store, queue):
                paths = {page: PATHS[page] for page in PAGES if page != "chart" or _has_chart()}
                if "chart" in paths:
                    chart_id = await _charted_episode(EpisodeClient(s.env.client, queue))
                    paths["chart"] = paths["chart"].format(episode_id=chart_id)
                await Projector(s.pool).catch_up()
                # What the fill left in this process is not the server's: collected and
                # frozen, so the collector's passes over it do not land in the pages' times.
                gc.collect()
                gc.freeze()
                times = await _measure(app, paths, rounds, warmup, out)
    gc.unfreeze()
    for name, values in times.items():
        key = name if name == "api_caseload" else f"console_{name}"
        for q, at in (("p50", 0.5), ("p99", 0.99)):
            out[f"{key}_{q}_ms"] = percentile(values, at)
    return out


if __name__ == "__main__":  # pragma: no cover - by hand: python -m bench.console_pages
    import json
    import os

    print(json.dumps(asyncio.run(run(os.environ.get("BENCH_SCALE") or "small")), indent=2))
