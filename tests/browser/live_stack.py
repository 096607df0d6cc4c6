"""The API, a worker and the projector on a real port, for a browser to load pages from.

A browser test is a plain (synchronous) function: Selenium blocks while the browser waits
for the server. So the server cannot share the test's event loop; `LiveStack` runs its own
loop in a thread, with its own Temporal dev server for the session, and `LiveStack.serve`
starts the app as `carepath up` wires it (testing.stack.api_app, build_worker,
running_projector, uvicorn) on a fresh database and a fresh task queue for one test.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import uvicorn
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.auth import Authenticator
from devstack.processes import free_port
from store.db import Pool, create_pool
from store.event_store import EventStore
from store.projections import running_projector
from testing.keys import CHAIN_KEY
from testing.stack import api_app, start_dev_server
from workers.health import recent_pollers
from workers.worker import build_worker

T = TypeVar("T")


@dataclass
class LiveApi:
    """One served app: its URL, and its resources for checks made beside the browser.

    `pool`, `store` and `temporal` belong to the stack's loop: use them inside `run`.
    """

    url: str
    app: FastAPI
    pool: Pool
    store: EventStore
    temporal: Client
    task_queue: str
    _stack: LiveStack = field(repr=False)
    _tokens: Callable[[str], str] = field(repr=False)

    def run(self, work: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Run `work()` on the stack's loop and return its result (e.g. a query on `pool`)."""
        return self._stack.call(_awaited(work), timeout)

    def http(self, user: str) -> httpx.Client:
        """A plain HTTP client of the API as the test user `user` (a bearer token), to
        prepare what a page then shows: refer a client, schedule sessions, and so on."""
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self._tokens(user)}"},
            timeout=30.0,
        )


async def _awaited(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


async def _finish_the_rest() -> None:
    """Cancel and await what still runs on the loop, so that nothing is left to be
    collected half-done when the interpreter exits."""
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)
    await asyncio.get_running_loop().shutdown_asyncgens()


class LiveStack:
    """An event loop in a daemon thread, holding the session's Temporal dev server."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="browser-live-stack", daemon=True
        )
        self._env: WorkflowEnvironment | None = None

    def start(self) -> None:
        self._thread.start()
        self._env = self.call(start_dev_server(), timeout=60.0)

    def stop(self) -> None:
        if self._env is not None:
            self.call(self._env.shutdown(), timeout=30.0)
        self.call(_finish_the_rest(), timeout=30.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10.0)
        if not self._thread.is_alive():
            self._loop.close()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run `coro` on the stack's loop; block until it is done."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    @property
    def temporal(self) -> Client:
        assert self._env is not None, "LiveStack.start() first"
        return self._env.client

    @contextlib.contextmanager
    def serve(
        self,
        database_url: str,
        authenticator: Authenticator,
        tokens: Callable[[str], str],
        *,
        build_app: Callable[[Client, EventStore, str, Authenticator], FastAPI] = api_app,
    ) -> Iterator[LiveApi]:
        """The app on a free port of 127.0.0.1 over `database_url`, with a worker on a fresh
        task queue and the projector, until the block ends."""
        stack = contextlib.AsyncExitStack()
        live = self.call(self._start(stack, database_url, authenticator, tokens, build_app))
        try:
            yield live
        finally:
            self.call(stack.aclose(), timeout=30.0)

    async def _start(
        self,
        stack: contextlib.AsyncExitStack,
        database_url: str,
        authenticator: Authenticator,
        tokens: Callable[[str], str],
        build_app: Callable[[Client, EventStore, str, Authenticator], FastAPI],
    ) -> LiveApi:
        try:
            pool = await create_pool(database_url, min_size=1, max_size=10)
            stack.push_async_callback(pool.close)
            task_queue = f"tq-{uuid.uuid4().hex[:12]}"
            store = EventStore(pool, chain_key=CHAIN_KEY)
            app = build_app(self.temporal, store, task_queue, authenticator)
            await stack.enter_async_context(build_worker(self.temporal, store, task_queue))
            await stack.enter_async_context(running_projector(pool, listen_dsn=database_url))
            port = free_port()
            server = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
            )
            serving = asyncio.create_task(server.serve())

            async def stop_serving() -> None:
                server.should_exit = True
                await serving

            stack.push_async_callback(stop_serving)
            async with asyncio.timeout(20.0):
                # uvicorn offers no started event; the worker none for its first poll.
                while not server.started:
                    if serving.done():
                        serving.result()  # raises what stopped it
                        raise RuntimeError("uvicorn stopped before it started")
                    await asyncio.sleep(0.01)
                while not await recent_pollers(self.temporal, task_queue):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except BaseException:
            await stack.aclose()
            raise
        return LiveApi(
            url=f"http://127.0.0.1:{port}",
            app=app,
            pool=pool,
            store=store,
            temporal=self.temporal,
            task_queue=task_queue,
            _stack=self,
            _tokens=tokens,
        )
