"""The Temporal worker: the CarePathway workflow and its activities on one task queue."""

from __future__ import annotations

import binascii
import compileall
import os
import socket
import sys
from pathlib import Path
from types import ModuleType

from pydantic import SecretStr
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.channels import (
    Channel,
    LogChannel,
    SmtpChannel,
    WebhookChannel,
    webhook_secret_bytes,
)
from activities.event_store import EventStoreActivities
from activities.notifications import NotificationActivities, NotificationLedger
from store.event_store import EventStore
from workers import payload_passes
from workers.activations import NEW_WORK_LIMIT, InlineActivations
from workers.errors import StartupError
from workers.settings import Settings
from workflows.care_pathway import CarePathwayWorkflow

WORKFLOWS = [CarePathwayWorkflow]

# A worker's identity names its role, host and process: `carepath-worker@<host>:<pid>`.
# The Temporal UI shows it beside every task the worker ran, and `workers.health` finds
# this host's worker among a task queue's pollers by it.
WORKER_ROLE = "carepath-worker"


def worker_identity(host: str | None = None, pid: int | None = None) -> str:
    """This process's worker identity (or that of `host` and `pid`)."""
    host = socket.gethostname() if host is None else host
    return f"{WORKER_ROLE}@{host}:{os.getpid() if pid is None else pid}"


def is_worker_on_host(identity: str, host: str) -> bool:
    """Whether a poller's identity is a CarePath worker's on `host`."""
    role, _, where = identity.partition("@")
    return role == WORKER_ROLE and where.rpartition(":")[0] == host


def cache_workflow_bytecode(package: ModuleType) -> None:
    """Write the bytecode of a package of workflows, if it is missing or stale.

    The sandbox executes a workflow's own module afresh for every run it creates: a new
    episode, a continued run, a replay after the workflow left the cache. Python caches
    the bytecode on import unless PYTHONDONTWRITEBYTECODE is set, and the image and many
    development shells set it; then each of those runs compiled `care_pathway.py` from
    source (3.5 ms; loading its cached bytecode takes 0.1 ms). A directory that cannot
    be written is left as it is: runs then compile as before.
    """
    for directory in package.__path__:
        compileall.compile_dir(Path(directory), maxlevels=0, quiet=2)


class BytecodeCachingRunner(SandboxedWorkflowRunner):
    """The sandbox runner, writing the bytecode of each workflow's package
    (`cache_workflow_bytecode`) when a worker or a replayer takes the workflow on."""

    def prepare_workflow(self, defn: workflow._Definition) -> None:
        package = sys.modules.get(defn.cls.__module__.rpartition(".")[0])
        if package is not None and hasattr(package, "__path__"):
            cache_workflow_bytecode(package)
        super().prepare_workflow(defn)


# The domain is pure and deterministic, so it is shared with the sandbox instead of being
# re-imported for every workflow run (which costs memory per run). OpenTelemetry is shared
# as Temporal's tracing interceptor requires: the workflow and the interceptor must see
# one context (workflows.trace_context, workers.tracing).
SANDBOX_RUNNER = BytecodeCachingRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "domain", "structlog", "opentelemetry"
    )
)
# Without the sandbox, workflow code runs as plain Python in the worker's process. The
# sandbox catches a workflow that reaches for the clock, the network or module state, but
# it costs every activation and every payload a detour through its importer (and every
# new run a fresh import of the workflow's modules): 2-3 ms of the worker's CPU per staff
# command, a third of what the worker spends (docs/operations.md, "Sizing"). So the
# sandbox is where the workflow code is checked (every worker the test suite builds, the
# replay tier of recorded histories, `carepath audit determinism`), and `carepath worker`
# runs without it unless CAREPATH_WORKFLOW_SANDBOX is set.
UNSANDBOXED_RUNNER = UnsandboxedWorkflowRunner()


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    """The runner of CarePath's workflows: the checking sandbox, or plain Python."""
    return SANDBOX_RUNNER if sandboxed else UNSANDBOXED_RUNNER


def build_worker(
    client: Client,
    store: EventStore,
    task_queue: str,
    notifications: NotificationActivities | None = None,
    *,
    max_cached_workflows: int = 1000,
    identity: str | None = None,
    sandboxed: bool = True,
    new_work_limit: int = NEW_WORK_LIMIT,
) -> Worker:
    """A worker of CarePath's workflows and activities on `task_queue`; `sandboxed` runs
    the workflows in the sandbox, which refuses what a workflow may not do (the default
    here, as the tests build their workers; `carepath worker` follows
    CAREPATH_WORKFLOW_SANDBOX). `new_work_limit`: see `workers.activations.Admission`
    (CAREPATH_WORKER_NEW_WORK_LIMIT)."""
    payload_passes.install()
    events = EventStoreActivities(store)
    notifications = notifications or NotificationActivities(ledger=NotificationLedger(store.pool))
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[events.append_events, notifications.send_notifications],
        workflow_runner=workflow_runner(sandboxed),
        workflow_task_executor=InlineActivations(new_work_limit=new_work_limit),
        max_cached_workflows=max_cached_workflows,
        identity=identity or worker_identity(),
    )


def build_notifications(settings: Settings, store: EventStore) -> NotificationActivities:
    """The notification activity with the channel CAREPATH_NOTIFY_CHANNEL selects."""
    return NotificationActivities(
        channel=notification_channel(settings),
        ledger=NotificationLedger(store.pool),
        link_base=settings.notify_link_base_url or settings.api_url,
    )


def notification_channel(settings: Settings) -> Channel:
    """The configured channel; StartupError names the setting a channel still needs."""
    if settings.notify_channel == "webhook":
        if not settings.notify_webhook_url or settings.notify_webhook_secret is None:
            raise StartupError(
                "CAREPATH_NOTIFY_CHANNEL=webhook needs CAREPATH_NOTIFY_WEBHOOK_URL and "
                "CAREPATH_NOTIFY_WEBHOOK_SECRET (the key that signs each body)"
            )
        return webhook_channel(
            settings, settings.notify_webhook_url, settings.notify_webhook_secret
        )
    if settings.notify_channel == "smtp":
        if not settings.smtp_host:
            raise StartupError("CAREPATH_NOTIFY_CHANNEL=smtp needs CAREPATH_SMTP_HOST")
        return SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            settings.smtp_recipients,
            settings.smtp_default_recipient,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout=settings.smtp_timeout,
        )
    return LogChannel()


def webhook_channel(settings: Settings, url: str, secret: SecretStr) -> WebhookChannel:
    """The webhook channel; StartupError if a secret is empty or not valid `whsec_` base64."""
    keys: list[bytes] = []
    for name, value in (
        ("CAREPATH_NOTIFY_WEBHOOK_SECRET", secret),
        *(
            ("CAREPATH_NOTIFY_WEBHOOK_PREVIOUS_SECRETS", v)
            for v in settings.notify_webhook_previous_secrets
        ),
    ):
        try:
            key = webhook_secret_bytes(value.get_secret_value())
        except (binascii.Error, ValueError):
            raise StartupError(
                f"{name}: a whsec_ secret must be base64 after the prefix: generate one "
                "as docs/webhooks.md shows"
            ) from None
        if not key:
            raise StartupError(f"{name} is empty: set a random secret as docs/webhooks.md shows")
        keys.append(key)
    return WebhookChannel(
        url,
        keys[0],
        timeout=settings.notify_webhook_timeout,
        previous_secrets=keys[1:],
        legacy_signature=settings.notify_webhook_legacy_signature,
    )
