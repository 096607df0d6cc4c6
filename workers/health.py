"""Whether a worker is polling the task queue: the worker half of CarePath's readiness.

Temporal keeps no list of live workers, only the pollers it has seen on a task queue,
each with the time its last poll began. A live worker starts a new long poll at least
once a minute, so a poller seen within `POLLER_FRESH_S` is taken as alive; Temporal
keeps a dead worker's entry for about five minutes, so its absence is noticed 30 to 90
seconds after it stopped. The API's `/readyz` and the worker container's healthcheck
(`python -m workers.health`) both ask through `recent_pollers`.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

# Long polls last about a minute; a poller last seen longer ago than this has gone.
POLLER_FRESH_S = 90.0


async def recent_pollers(
    client: Client,
    task_queue: str,
    *,
    within_s: float = POLLER_FRESH_S,
    timeout_s: float = 2.0,
) -> list[str]:
    """Identities of the workers that began a workflow-task poll within `within_s` seconds."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        ),
        timeout=timedelta(seconds=timeout_s),
    )
    now = datetime.now(UTC)
    return [
        poller.identity
        for poller in response.pollers
        if (now - poller.last_access_time.ToDatetime(UTC)).total_seconds() <= within_s
    ]


async def _this_host_polls() -> bool:
    # Imported here: the settings and the client are only needed when run as a script.
    from workers.settings import Settings
    from workers.temporal import PLAIN_CONVERTER, connect
    from workers.worker import is_worker_on_host

    settings = Settings()
    # Asking about pollers carries no payload: no keys needed.
    client = await connect(
        settings.effective_temporal_address, settings.temporal_namespace, PLAIN_CONVERTER
    )
    identities = await recent_pollers(client, settings.temporal_task_queue)
    # A CarePath worker's identity is "carepath-worker@<hostname>:<pid>"
    # (`workers.worker.worker_identity`); in a container the hostname is the container's,
    # so this asks about this container's worker only.
    host = socket.gethostname()
    return any(is_worker_on_host(identity, host) for identity in identities)


def main() -> int:
    """Exit 0 when a worker on this host polls the configured task queue, else 1."""
    try:
        polls = asyncio.run(_this_host_polls())
    except Exception as exc:
        print(f"worker check failed: {exc}", file=sys.stderr)
        return 1
    if not polls:
        print("no worker on this host polls the task queue", file=sys.stderr)
    return 0 if polls else 1


if __name__ == "__main__":
    code = main()
    # A short-lived process that used a Temporal client can abort while the interpreter
    # finalizes (the SDK's Rust threads outlive it: sdk-python issue #300), which would
    # turn a healthy answer into exit 134. Leave without finalizing, output flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
