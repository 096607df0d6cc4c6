"""Every CarePath service of docker-compose.yml, started as compose starts it, becomes healthy.

No Docker engine runs here, so each service's command (`python -m cli.main <command>`,
what the image's `carepath` entrypoint runs) is started as a process with the
environment compose gives the container and the files it mounts: the `*_FILE` secrets
from a `carepath deploy init` directory, volumes from their host side. Only the host
names change: `temporal:7233` is a Temporal dev server started here, `carepath-db:5432`
an embedded PostgreSQL set up by the same init script the postgres image runs
(deploy/postgres/initdb/), with the passwords `deploy init` wrote. Each service is then
judged by its own compose healthcheck (migrations: exit 0).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cli.deploy import init_deployment
from devstack.embedded_postgres import PASSWORDS_FILE, EmbeddedPostgres, postgres_bin_dir
from devstack.processes import free_port
from testing.compose import (
    COMPOSE_DIR_VARIABLE,
    ROOT,
    as_list,
    container_environment,
    interpolate,
    services,
)
from testing.stack import start_dev_server

INIT_SCRIPT = ROOT / "deploy" / "postgres" / "initdb" / "10-carepath-roles.sh"
HEALTHY_WITHIN_S = 90.0


@dataclass
class LocalServers:
    deploy_dir: Path
    temporal_address: str
    postgres_port: int
    data_dir: Path
    work_dir: Path
    tokens: dict[str, tuple[str, str]]  # what `deploy init` printed: user id -> role, token


@pytest.fixture(scope="module")
async def local_servers() -> AsyncIterator[LocalServers]:
    """`carepath deploy init`, then the servers compose would give the CarePath services."""
    # Under /tmp rather than pytest's tmp_path: as root the server runs as another user,
    # which must traverse every parent directory (tests/conftest.py, server_directory).
    root = Path(tempfile.mkdtemp(prefix="carepath-compose-"))
    try:
        written = init_deployment(root / "secrets", root / ".env")
        deploy_dir = written.directory
        # The embedded server's superuser takes deploy init's postgres password; its
        # owner and application roles start with others, which the init script replaces.
        pg_dir = root / "pg"
        pg_dir.mkdir(mode=0o700)
        superuser = (deploy_dir / "postgres-password").read_text(encoding="utf-8").strip()
        passwords = {
            "postgres": superuser,
            "carepath_owner": secrets.token_urlsafe(16),
            "carepath_app": secrets.token_urlsafe(16),
        }
        (pg_dir / PASSWORDS_FILE).write_text(json.dumps(passwords), encoding="utf-8")
        (pg_dir / PASSWORDS_FILE).chmod(0o600)
        postgres = EmbeddedPostgres(pg_dir, free_port())
        await postgres.start()
        temporal = await start_dev_server()
        try:
            _run_init_script(deploy_dir, postgres.port, superuser)
            work_dir = root / "work"
            work_dir.mkdir()
            yield LocalServers(
                deploy_dir=deploy_dir,
                temporal_address=temporal.client.service_client.config.target_host,
                postgres_port=postgres.port,
                data_dir=root / "data",
                work_dir=work_dir,
                tokens=written.tokens,
            )
        finally:
            await temporal.shutdown()
            await postgres.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_init_script(deploy_dir: Path, port: int, superuser_password: str) -> None:
    """deploy/postgres/initdb/ as the postgres image runs it, over TCP instead of a socket."""
    env = {
        "PATH": f"{postgres_bin_dir()}:{os.environ['PATH']}",
        "PGHOST": "127.0.0.1",
        "PGPORT": str(port),
        "PGPASSWORD": superuser_password,
        "POSTGRES_USER": "postgres",
        "DB_OWNER_PASSWORD_FILE": str(deploy_dir / "carepath-owner-password"),
        "DB_APP_PASSWORD_FILE": str(deploy_dir / "carepath-app-password"),
    }
    result = subprocess.run(
        [str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"the init script failed:\n{result.stdout}{result.stderr}"


@dataclass
class Service:
    name: str
    argv: list[str]
    env: dict[str, str]
    healthcheck: list[str] | None
    log: Path


def _service(name: str, servers: LocalServers, ports: dict[str, str]) -> Service:
    """The compose service as a local process: its command, environment and files."""
    spec = services()[name]
    compose_vars = {COMPOSE_DIR_VARIABLE: str(servers.deploy_dir)}
    env = container_environment(name, servers.deploy_dir)
    # Volumes: the container path is the host directory compose mounts there.
    for volume in as_list(spec.get("volumes")):
        host, container = interpolate(volume, compose_vars).split(":")[:2]
        env = {k: v.replace(container, host) for k, v in env.items()}
    env = {k: _local(v, servers, ports) for k, v in env.items()}
    for variable, path in list(env.items()):
        if variable.endswith("URL_FILE"):
            env[variable] = str(_rewritten_copy(Path(path), servers, ports))
    healthcheck = None
    if spec.get("healthcheck"):
        test = [_local(arg, servers, ports) for arg in spec["healthcheck"]["test"]]
        assert test[0] == "CMD", f"{name}: expected an exec-form healthcheck, got {test[0]}"
        healthcheck = [sys.executable if arg == "python" else arg for arg in test[1:]]
    return Service(
        name=name,
        argv=[sys.executable, "-m", "cli.main", *as_list(spec.get("command"))],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(servers.work_dir),
            "PYTHONPATH": str(ROOT),
            # The image's own environment (Dockerfile ENV), its data dir moved here.
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "CAREPATH_DATA_DIR": str(servers.data_dir),
            "CAREPATH_API_HOST": "0.0.0.0",
            "CAREPATH_LOG_FORMAT": "json",
            **env,
        },
        healthcheck=healthcheck,
        log=servers.work_dir / f"{name}.log",
    )


def _local(text: str, servers: LocalServers, ports: dict[str, str]) -> str:
    """Compose's host names and container ports as the local servers' addresses."""
    text = text.replace("temporal:7233", servers.temporal_address)
    text = text.replace("carepath-db:5432", f"127.0.0.1:{servers.postgres_port}")
    for container_port, local_port in ports.items():
        text = text.replace(f"127.0.0.1:{container_port}", f"127.0.0.1:{local_port}")
        if text == container_port:
            text = local_port
    return text


def _rewritten_copy(path: Path, servers: LocalServers, ports: dict[str, str]) -> Path:
    copy = servers.work_dir / f"local-{path.name}"
    copy.write_text(_local(path.read_text(encoding="utf-8"), servers, ports), encoding="utf-8")
    copy.chmod(0o600)
    return copy


@pytest.fixture(scope="module")
def ports() -> dict[str, str]:
    """The containers' listening ports, each moved to a free local one."""
    return {"8000": str(free_port()), "9464": str(free_port())}


@pytest.fixture(scope="module")
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(service: Service, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    with service.log.open("wb") as log:
        process = subprocess.Popen(
            service.argv, env=service.env, cwd=service.log.parent, stdout=log, stderr=log
        )
    started.append(process)
    return process


async def _becomes_healthy(service: Service, process: subprocess.Popen[bytes]) -> float:
    """Seconds until the service's own healthcheck passes; fails if it exits first."""
    assert service.healthcheck is not None
    begun = time.monotonic()
    last = ""
    while time.monotonic() - begun < HEALTHY_WITHIN_S:
        if process.poll() is not None:
            pytest.fail(
                f"{service.name} exited {process.returncode}:\n"
                + service.log.read_text(encoding="utf-8", errors="replace")[-3000:]
            )
        check = await asyncio.to_thread(
            subprocess.run,
            service.healthcheck,
            env=service.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if check.returncode == 0:
            return time.monotonic() - begun
        last = check.stderr.strip().splitlines()[-1:] and check.stderr.strip().splitlines()[-1]
        await asyncio.sleep(1.0)
    pytest.fail(f"{service.name} not healthy within {HEALTHY_WITHIN_S:.0f} s: {last}")


def _service_named(argv_tail: list[str]) -> str:
    (name,) = [
        n for n, s in services().items() if "build" in s and as_list(s.get("command")) == argv_tail
    ]
    return name


async def test_given_deploy_init_when_every_carepath_service_starts_as_compose_starts_it_then_each_becomes_healthy(
    local_servers: LocalServers,
    ports: dict[str, str],
    started: list[subprocess.Popen[bytes]],
) -> None:
    migrate = _service(_service_named(["db", "migrate"]), local_servers, ports)
    result = await asyncio.to_thread(
        subprocess.run,
        migrate.argv,
        env=migrate.env,
        cwd=local_servers.work_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"migrations failed:\n{result.stdout}{result.stderr}"

    worker = _service(_service_named(["worker"]), local_servers, ports)
    api = _service(_service_named(["api"]), local_servers, ports)
    worker_process = _start(worker, started)
    api_process = _start(api, started)
    await _becomes_healthy(worker, worker_process)
    await _becomes_healthy(api, api_process)

    worker_log = worker.log.read_text(encoding="utf-8", errors="replace")
    assert "checkpoints_disabled" not in worker_log
    # Nothing was written into the image's data dir (not writable by the containers' user).
    assert not local_servers.data_dir.exists()


async def test_given_the_stack_when_a_token_deploy_init_printed_is_used_then_the_api_knows_its_user(
    local_servers: LocalServers, ports: dict[str, str], started: list[subprocess.Popen[bytes]]
) -> None:
    # Runs after the start-up test (same module): the API is up on its moved port.
    assert started, "the services were not started"
    _role, token = local_servers.tokens["dan.director"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports['8000']}") as http:
        known = await http.get("/episodes", headers={"Authorization": f"Bearer {token}"})
        unknown = await http.get("/episodes", headers={"Authorization": "Bearer not-issued"})
    assert known.status_code == 200, known.text
    assert unknown.status_code == 401
