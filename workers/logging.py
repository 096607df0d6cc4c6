"""structlog, configured once per process.

JSON lines when stderr is not a terminal, readable key-value lines when it is. Log lines
emitted inside a workflow or an activity carry the Temporal context (workflow id, run id,
activity type, attempt), and a workflow's lines are dropped while it replays history, so
each line appears once however often the workflow is replayed. Standard-library loggers
(uvicorn, temporalio) are routed through the same renderer.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog
from temporalio import activity, workflow

# Keys that could carry protected health information; their values never reach a log line.
PHI_KEYS = frozenset(
    {
        "name",
        "first_name",
        "last_name",
        "date_of_birth",
        "dob",
        "ssn",
        "phone",
        "email",
        "address",
        "diagnoses",
        "notes",
        "summary",
        "justification",
        # A second line of defence behind the rule that no log call passes these at all
        # (tests/integration/test_phi_scan.py): client and family references, clinical text.
        "client_ref",
        "mrn",
        "recipient_ref",
        "diagnosis",
        "description",
        "problems",
        "goals",
        "discharge_summary",
    }
)

_configured = False


def add_temporal_context(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Merge the current workflow's or activity's identity; drop workflow lines during replay."""
    if workflow.in_workflow():
        if workflow.unsafe.is_replaying_history_events():
            raise structlog.DropEvent
        info = workflow.info()
        event_dict.setdefault("workflow_id", info.workflow_id)
        event_dict.setdefault("run_id", info.run_id)
        event_dict.setdefault("workflow_type", info.workflow_type)
    elif activity.in_activity():
        ainfo = activity.info()
        event_dict.setdefault("workflow_id", ainfo.workflow_id)
        event_dict.setdefault("run_id", ainfo.workflow_run_id)
        event_dict.setdefault("activity_type", ainfo.activity_type)
        event_dict.setdefault("activity_id", ainfo.activity_id)
        event_dict.setdefault("attempt", ainfo.attempt)
    return event_dict


def redact_phi(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Replace the value of any PHI-bearing key with a marker."""
    for key in PHI_KEYS.intersection(event_dict):
        event_dict[key] = "[redacted]"
    return event_dict


def _shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        add_temporal_context,
        redact_phi,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    log_format: str = "auto", level: str = "info", stream: TextIO | None = None
) -> None:
    """Configure structlog and the standard library's root logger; later calls do nothing."""
    global _configured
    if _configured:
        return
    _configured = True
    stream = stream or sys.stderr
    as_json = log_format == "json" or (log_format == "auto" and not stream.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=stream.isatty())
    )
    structlog.configure(
        processors=[
            # A line below the level is dropped before any other processor works on it.
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info if as_json else _identity,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access log repeats what our request logging says; keep its errors.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def _identity(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return event_dict
