"""`carepath episode ...` and `carepath access-log` against the API served over real HTTP.

The API runs in uvicorn on the test's event loop; the CLI runs in a thread (it is a
blocking program) and talks to it on 127.0.0.1, with tokens from the test users file.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest
import uvicorn
from api_users import token, users_authenticator
from fhir.resources.R4B.bundle import Bundle
from structlog.testing import capture_logs
from temporalio.client import Client

from cli.main import main
from devstack.processes import free_port
from store.db import Pool
from store.event_store import EventStore
from store.projections import Projector
from testing import samples
from testing.keys import CHAIN_KEY
from testing.sample_streams import episode_events
from testing.stack import api_app
from workers.worker import build_worker

pytestmark = pytest.mark.integration


@pytest.fixture
async def api_url(temporal_client: Client, db_pool: Pool) -> AsyncIterator[str]:
    task_queue = f"tq-{uuid.uuid4().hex[:12]}"
    store = EventStore(db_pool, chain_key=CHAIN_KEY)
    app = api_app(temporal_client, store, task_queue, users_authenticator())
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    # The server's log lines would mix with the CLI's output on stdout: keep them aside.
    with capture_logs():
        async with build_worker(temporal_client, store, task_queue):
            serving = asyncio.create_task(server.serve())
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no started event
                await asyncio.sleep(0.02)
            yield f"http://127.0.0.1:{port}"
            server.should_exit = True
            await serving


async def cli(
    capsys: pytest.CaptureFixture[str], api_url: str, user: str | None, *argv: str
) -> tuple[int, str, str]:
    options = ["--api-url", api_url] + (["--token", token(user)] if user else [])
    # The global options may go anywhere on the line: after the command here.
    code = await asyncio.to_thread(main, [*argv, *options])
    out, err = capsys.readouterr()
    return code, out, err


async def test_staff_drive_an_episode_from_the_cli(
    api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await cli(
        capsys, api_url, "intake", "episode", "refer", "--client-ref", "MRN-31",
        "--program", "adult-iop", "--source", "self", "--json",
    )  # fmt: skip
    assert code == 0
    episode_id = json.loads(out)["episode_id"]
    findings = json.dumps({"findings": samples.ELIGIBLE.model_dump(mode="json")})

    screened = await cli(
        capsys,
        api_url,
        "intake",
        "episode",
        "record-screening",
        episode_id,
        "--body",
        findings,
    )
    assessed = await cli(
        capsys, api_url, "clinician", "episode", "record-assessment", episode_id,
        "--asam-edition", "asam-criteria-3", "--recommended-level", "iop",
        "--diagnoses", '["F10.20"]', "--asam-ratings",
        json.dumps({"acute_intoxication_withdrawal": 1, "biomedical": 0,
                    "emotional_behavioral_cognitive": 2, "readiness_to_change": 2,
                    "relapse_continued_use": 2, "recovery_environment": 1}),
    )  # fmt: skip
    denied = await cli(capsys, api_url, "intake", "episode", "admit-client", episode_id)
    admitted = await cli(
        capsys, api_url, "clinician", "episode", "admit-client", episode_id, "--json"
    )
    shown = await cli(capsys, api_url, "clinician", "episode", "show", episode_id)
    events = await cli(capsys, api_url, "auditor", "episode", "events", episode_id)
    no_token = await cli(capsys, api_url, None, "episode", "show", episode_id)
    hidden = await cli(capsys, api_url, "teen_clinician", "episode", "show", episode_id)
    log = await cli(capsys, api_url, "auditor", "audit", "access-log", "--format", "fhir")

    assert screened[0] == 0, screened
    assert "screening_recorded" in screened[1]
    assert assessed[0] == 0, assessed
    assert "assessment_recorded" in assessed[1]
    assert denied[0] == 1
    assert denied[2].startswith("carepath: error: CommandNotAllowed:")
    assert denied[2].count("\n") == 1
    assert admitted[0] == 0
    assert json.loads(admitted[1])["stage"] == "treatment_planning"
    assert "MRN-31" in shown[1]
    assert "FIELD" in shown[1]
    assert "dimension 4: Readiness to change" in shown[1], "3rd-edition names"
    assert "Level 2.1: Intensive outpatient services" in shown[1]
    assert events[1].splitlines()[0].split() == ["SEQ", "EVENT", "OCCURRED", "AT", "ACTOR", "HASH"]
    assert no_token[0] == 1
    assert "CAREPATH_TOKEN" in no_token[2]
    assert hidden[0] == 1
    assert "EpisodeNotFound" in hidden[2]
    assert log[0] == 0
    bundle = Bundle.model_validate(json.loads(log[1]))
    assert any(e.resource.outcome == "4" for e in bundle.entry or []), (
        "the refused admission is in the export"
    )


async def test_commands_lists_every_staff_command(
    api_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = await cli(capsys, api_url, None, "episode", "commands", "--json")

    commands = {c["command"] for c in json.loads(out)}
    assert code == 0
    assert {"record-attendance", "discharge", "record-authorization"} <= commands
    assert "tick" not in commands


async def test_given_a_short_week_then_the_cli_lists_it_and_shows_the_weeks(
    capsys: pytest.CaptureFixture[str], api_url: str, db_pool: Pool
) -> None:
    await EventStore(db_pool, chain_key=CHAIN_KEY).append(
        "ep-short", episode_events("ep-short", sessions=5)
    )
    await Projector(db_pool).catch_up()

    code, out, _ = await cli(capsys, api_url, "supervisor", "episode", "below-intensity")
    weeks_code, weeks, _ = await cli(
        capsys, api_url, "clinician", "episode", "attendance", "ep-short"
    )

    assert code == weeks_code == 0
    assert "ep-short" in out
    assert "MRN-ep-short" in out
    assert "2026-01-05" in out
    assert weeks.splitlines()[0].split()[:2] == ["FIRST", "DAY"]
    assert "2026-01-05" in weeks
    assert "2026-01-11" in weeks


async def test_given_more_episodes_than_a_page_when_listing_then_the_cli_says_more_exist(
    capsys: pytest.CaptureFixture[str], api_url: str
) -> None:
    for _ in range(3):
        code, _, err = await cli(
            capsys,
            api_url,
            "intake",
            *("episode", "refer", "--client-ref", "MRN-PAGE", "--program", "drill"),
            *("--source", "self"),
        )
        assert code == 0, err
    listed: list[str] = []
    for _ in range(100):
        code, out, _ = await cli(
            capsys, api_url, "director", "episode", "list", "--program", "drill", "--json"
        )
        listed = [e["episode_id"] for e in json.loads(out)["episodes"]]
        if len(listed) >= 3:
            break
        await asyncio.sleep(0.1)

    code, out, err = await cli(
        capsys, api_url, "director", "episode", "list", "--program", "drill", "--limit", "1"
    )
    assert code == 0, err
    assert "more rows exist" in err
    assert "--all-pages" in err

    code, out, err = await cli(
        capsys,
        api_url,
        "director",
        *("episode", "list", "--program", "drill", "--limit", "1", "--all-pages", "--json"),
    )
    assert code == 0, err
    every = json.loads(out)
    assert sorted(e["episode_id"] for e in every["episodes"]) == sorted(listed)
    assert every["next"] is None
    assert err == ""
