"""Log lines from workflows and activities carry Temporal context and never repeat on replay."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest
import structlog
from temporalio.client import Client

from domain.actors import Actor, Role
from domain.commands import ReferClient, ReferralSource
from programs import load_catalog
from testing.payload_keys import TEST_CONVERTER
from workers.logging import add_temporal_context, redact_phi
from workers.replay import build_replayer
from workflows.client import EpisodeClient
from workflows.messages import workflow_id_for


@pytest.fixture
def captured() -> Iterator[list[MutableMapping[str, Any]]]:
    """Route structlog through our Temporal processors into a list, then restore defaults."""
    lines: list[MutableMapping[str, Any]] = []

    def keep(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> str:
        lines.append(dict(event_dict))
        return ""

    structlog.configure(
        processors=[add_temporal_context, redact_phi, keep],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    try:
        yield lines
    finally:
        structlog.reset_defaults()


async def test_workflow_and_activity_lines_carry_temporal_context_once(
    client: Client, episodes: EpisodeClient, captured: list[MutableMapping[str, Any]]
) -> None:
    episode_id = str(uuid.uuid4())
    command = ReferClient(
        command_id=f"cmd-{uuid.uuid4().hex}",
        actor=Actor(user_id="intake-9", role=Role.INTAKE_COORDINATOR),
        client_ref="MRN-9",
        program_id="adult-iop",
        referral_source=ReferralSource.SELF,
    )
    await episodes.refer(episode_id, command, load_catalog().get("adult-iop"))

    applied = [line for line in captured if line["event"] == "command_applied"]
    appended = [line for line in captured if line["event"] == "events_appended"]
    assert len(applied) == 1
    assert applied[0]["workflow_id"] == workflow_id_for(episode_id)
    assert applied[0]["run_id"]
    assert appended[0]["activity_type"] == "append_events"
    assert appended[0]["attempt"] == 1
    assert appended[0]["workflow_id"] == workflow_id_for(episode_id)

    history = await client.get_workflow_handle(workflow_id_for(episode_id)).fetch_history()
    captured.clear()
    await build_replayer(TEST_CONVERTER).replay_workflow(history)

    assert [line for line in captured if line["event"] == "command_applied"] == []


def test_phi_keys_are_redacted() -> None:
    event = redact_phi(None, "info", {"event": "x", "date_of_birth": "1990-01-01", "seq": 3})

    assert event == {"event": "x", "date_of_birth": "[redacted]", "seq": 3}


def test_client_and_family_references_and_clinical_text_are_redacted_too() -> None:
    fields = {"client_ref": "MRN-1", "recipient_ref": "family-contact-1", "description": "x"}

    event = redact_phi(None, "info", {"event": "x", **fields})

    assert event == {"event": "x", **dict.fromkeys(fields, "[redacted]")}


def test_logs_are_json_lines_when_not_on_a_terminal() -> None:
    program = (
        "import logging, structlog\n"
        "from workers.logging import configure_logging\n"
        "configure_logging('auto', 'info')\n"
        "configure_logging('console', 'debug')\n"  # a second call changes nothing
        "structlog.get_logger('t').info('session_missed', episode_id='e-1')\n"
        "logging.getLogger('uvicorn.error').info('from stdlib')\n"
        "structlog.get_logger('t').debug('hidden')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )

    lines = [json.loads(line) for line in result.stderr.splitlines()]
    assert [line["event"] for line in lines] == ["session_missed", "from stdlib"]
    assert lines[0]["episode_id"] == "e-1"
    assert lines[0]["level"] == "info"
    assert "timestamp" in lines[0]


def test_a_line_below_the_level_stops_before_the_processors_that_build_it() -> None:
    # A processor placed right after the configuration's first one counts the lines that
    # get past it: only the warning should, not the info line below the level.
    program = (
        "import structlog\n"
        "from workers.logging import configure_logging\n"
        "configure_logging('json', 'warning')\n"
        "seen = []\n"
        "def count(logger, method, event_dict):\n"
        "    seen.append(event_dict['event'])\n"
        "    return event_dict\n"
        "processors = structlog.get_config()['processors']\n"
        "structlog.configure(processors=[processors[0], count, *processors[1:]])\n"
        "log = structlog.get_logger('t')\n"
        "log.info('below')\n"
        "log.warning('at')\n"
        "print(','.join(seen))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "at"
    assert [json.loads(line)["event"] for line in result.stderr.splitlines()] == ["at"]
