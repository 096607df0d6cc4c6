"""The embedded PostgreSQL that `carepath up` supervises: starts, resumes, stops cleanly.

Each test runs its own server in its own directory; first starts take about half a second.
The directories are made outside pytest's tmp_path (see `server_directory` in conftest).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from devstack.embedded_postgres import EmbeddedPostgres
from devstack.processes import free_port
from workers.errors import StartupError

pytestmark = pytest.mark.integration


def is_alive(pid: int) -> bool:
    """True while `pid` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


async def wait_gone(pids: list[int], within_s: float = 10.0) -> list[int]:
    """The pids still alive after waiting up to `within_s` for all of them to exit."""
    alive = [pid for pid in pids if is_alive(pid)]
    for _ in range(int(within_s / 0.05)):
        if not alive:
            break
        await asyncio.sleep(0.05)
        alive = [pid for pid in alive if is_alive(pid)]
    return alive


@pytest.fixture
async def server(server_data_dir: Path, free_tcp_port: int) -> AsyncIterator[EmbeddedPostgres]:
    """A server object for this test's directory; stopped afterwards whatever happened."""
    pg = EmbeddedPostgres(server_data_dir / "data", free_tcp_port)
    yield pg
    await pg.stop()


async def test_url_reaches_the_carepath_database(server: EmbeddedPostgres) -> None:
    await server.start()

    conn = await asyncpg.connect(server.url)
    try:
        assert await conn.fetchval("SELECT current_database()") == "carepath"
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
    finally:
        await conn.close()
    assert server.url.startswith("postgresql://")
    assert (server.data_dir / "postgres" / "PG_VERSION").exists()
    assert (server.data_dir / "postgres.log").exists()


async def test_restart_resumes_the_same_data(server: EmbeddedPostgres) -> None:
    started = time.monotonic()
    await server.start()
    first_start_s = time.monotonic() - started
    conn = await asyncpg.connect(server.owner_url)
    await conn.execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('still here')")
    await conn.close()
    await server.stop()

    started = time.monotonic()
    await server.start()
    restart_s = time.monotonic() - started

    conn = await asyncpg.connect(server.owner_url)
    try:
        assert await conn.fetchval("SELECT note FROM kept") == "still here"
    finally:
        await conn.close()
    print(f"embedded postgres: first start {first_start_s:.2f} s, restart {restart_s:.2f} s")


async def test_stop_leaves_no_postgres_process(server: EmbeddedPostgres) -> None:
    await server.start()
    postmaster = server.pid
    assert postmaster is not None
    backends = children_of(postmaster)
    assert backends, "a running postmaster has its auxiliary processes"

    await server.stop()

    assert server.pid is None
    assert await wait_gone([postmaster, *backends], within_s=0) == []


async def test_stop_twice_is_harmless(server: EmbeddedPostgres) -> None:
    await server.start()

    await server.stop()
    await server.stop()

    assert server.pid is None


async def test_stop_before_start_is_harmless(server: EmbeddedPostgres) -> None:
    await server.stop()


async def test_taken_port_is_a_one_line_error_naming_the_setting(
    server: EmbeddedPostgres,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", server.port))
        holder.listen()

        with pytest.raises(StartupError, match="CAREPATH_POSTGRES_PORT") as caught:
            await server.start()

    assert str(server.port) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert server.pid is None


async def test_unwritable_data_dir_is_an_error_naming_the_setting(
    tmp_path: Path, free_tcp_port: int
) -> None:
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    pg = EmbeddedPostgres(not_a_dir / "data", free_tcp_port)

    with pytest.raises(StartupError, match="CAREPATH_DATA_DIR") as caught:
        await pg.start()

    assert "\n" not in str(caught.value)


async def test_a_foreign_non_empty_postgres_dir_is_refused_not_overwritten(
    server: EmbeddedPostgres,
) -> None:
    (server.data_dir / "postgres").mkdir(parents=True)
    (server.data_dir / "postgres" / "notes.txt").write_text("not a database")

    with pytest.raises(StartupError, match="holds no PostgreSQL data"):
        await server.start()

    assert (server.data_dir / "postgres" / "notes.txt").read_text() == "not a database"


async def test_stale_pid_file_of_a_dead_postmaster_is_cleared(server: EmbeddedPostgres) -> None:
    await server.start()
    await server.stop()
    pid_file = server.data_dir / "postgres" / "postmaster.pid"
    pid_file.write_text(f"{_a_dead_pid()}\n{server.data_dir / 'postgres'}\n")

    await server.start()

    assert server.pid is not None


async def test_pid_file_naming_a_live_process_that_is_not_postgres_is_cleared(
    server: EmbeddedPostgres,
) -> None:
    # After a reboot the old postmaster's pid may belong to an unrelated process.
    await server.start()
    await server.stop()
    unrelated = await asyncio.create_subprocess_exec("sleep", "30")
    try:
        pid_file = server.data_dir / "postgres" / "postmaster.pid"
        pid_file.write_text(f"{unrelated.pid}\n{server.data_dir / 'postgres'}\n")

        await server.start()

        assert server.pid is not None
    finally:
        unrelated.kill()
        await unrelated.wait()


async def test_second_instance_on_the_same_data_dir_is_refused(
    server: EmbeddedPostgres,
) -> None:
    await server.start()
    intruder = EmbeddedPostgres(server.data_dir, free_port())

    with pytest.raises(StartupError, match="already running") as caught:
        await intruder.start()

    assert "CAREPATH_DATA_DIR" in str(caught.value)
    assert server.pid is not None


async def test_killed_supervisor_leaves_no_orphan_postgres(
    server_data_dir: Path, free_tcp_port: int
) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        from pathlib import Path
        from devstack.embedded_postgres import EmbeddedPostgres

        async def main():
            pg = EmbeddedPostgres(Path(sys.argv[1]), int(sys.argv[2]))
            await pg.start()
            print(pg.pid, flush=True)
            await asyncio.sleep(3600)

        asyncio.run(main())
        """
    )
    supervisor = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        script,
        str(server_data_dir / "data"),
        str(free_tcp_port),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert supervisor.stdout is not None
        postmaster = int(await asyncio.wait_for(supervisor.stdout.readline(), 60))
        assert is_alive(postmaster)

        os.kill(supervisor.pid, signal.SIGKILL)
        await supervisor.wait()

        assert await wait_gone([postmaster], within_s=15) == []
    finally:
        if supervisor.returncode is None:
            supervisor.kill()
            await supervisor.wait()


def _a_dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid
