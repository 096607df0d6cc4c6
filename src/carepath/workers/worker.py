"""The Temporal worker: the CarePathway workflow and its activities on one task queue."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from carepath.activities.event_store import EventStoreActivities
from carepath.activities.notifications import NotificationActivities
from carepath.store.event_store import EventStore
from carepath.workflows.care_pathway import CarePathwayWorkflow

WORKFLOWS = [CarePathwayWorkflow]

# The domain is pure and deterministic, so it is shared with the sandbox instead of being
# re-imported for every workflow run (which costs memory per run).
SANDBOX_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "carepath.domain", "structlog"
    )
)


def build_worker(
    client: Client,
    store: EventStore,
    task_queue: str,
    notifications: NotificationActivities | None = None,
) -> Worker:
    events = EventStoreActivities(store)
    notifications = notifications or NotificationActivities()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[events.append_events, notifications.send_notifications],
        workflow_runner=SANDBOX_RUNNER,
    )
