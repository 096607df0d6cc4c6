"""`carepath up` as an operator runs it: a real process tree, signals, restarts, bad settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from temporalio.testing import WorkflowEnvironment

from api.auth import demo_tokens
from devstack.processes import free_port
from domain.actors import Role

pytestmark = pytest.mark.integration

CAREPATH = str(Path(sys.executable).parent / "carepath")
READY_TIMEOUT_S = 90


class Up:
    """One `carepath up` process with its own ports and data dir."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        self.env = {
            **os.environ,
            "CAREPATH_DATA_DIR": str(data_dir),
            "CAREPATH_API_PORT": str(self.api_port),
            "CAREPATH_TEMPORAL_PORT": str(free_port()),
            "CAREPATH_TEMPORAL_UI_PORT": str(free_port()),
            "CAREPATH_POSTGRES_PORT": str(free_port()),
            "CAREPATH_LOG_FORMAT": "json",
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [CAREPATH, "up"],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_healthy(self) -> httpx.Response:
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"carepath up exited early: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            try:
                response = httpx.get(self.url + "/healthz", timeout=2)
                if response.status_code == 200:
                    return response
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        pytest.fail("carepath up did not become healthy in time")

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        return psutil.Process(self.proc.pid).children(recursive=True)

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        assert self.proc is not None
        self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err

    def run_to_exit(self) -> tuple[int, str]:
        result = subprocess.run(
            [CAREPATH, "up"], env=self.env, capture_output=True, text=True, timeout=120
        )
        return result.returncode, result.stderr


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "carepath-data"


@pytest.fixture
def up(data_dir: Path) -> Iterator[Up]:
    instance = Up(data_dir)
    yield instance
    if instance.proc is not None and instance.proc.poll() is None:
        instance.proc.kill()
        instance.proc.communicate()


def _servers_using(data_dir: Path) -> list[psutil.Process]:
    """Processes whose command line mentions this test's data dir."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(data_dir) in arg for arg in process.info["cmdline"] or ()):
            found.append(process)
    return found


def _auth(data_dir: Path, role: Role = Role.INTAKE_COORDINATOR) -> dict[str, str]:
    """The demo token `carepath up` wrote for `role` into the data dir's users file."""
    return {"Authorization": f"Bearer {demo_tokens(data_dir / 'users.yaml')[role]}"}


def _gone(processes: list[psutil.Process]) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=15)
    return alive


def test_up_serves_refers_stops_cleanly_and_resumes(up: Up) -> None:
    up.start()
    health = up.wait_healthy()
    assert health.json()["status"] == "ok"
    children = up.descendants()
    names = {p.name() for p in children}
    assert {"temporal", "postgres"} <= names

    referral = httpx.post(
        up.url + "/episodes",
        json={"client_ref": "MRN-7", "program_id": "adult-iop", "referral_source": "court"},
        headers=_auth(up.data_dir),
        timeout=30,
    )
    assert referral.status_code == 201, referral.text
    episode_id = referral.json()["episode_id"]

    code, out, _err = up.stop(signal.SIGINT)
    assert code == 0
    assert "API" in out
    assert "/docs" in out
    assert "Ctrl-C" in out
    assert demo_tokens(up.data_dir / "users.yaml")[Role.AUDITOR] in out
    assert (up.data_dir / "users.yaml").stat().st_mode & 0o777 == 0o600
    assert _gone(children) == [], "a child process outlived carepath up"

    up.start()
    up.wait_healthy()
    again = httpx.get(f"{up.url}/episodes/{episode_id}", headers=_auth(up.data_dir), timeout=30)
    events = httpx.get(
        f"{up.url}/episodes/{episode_id}/events", headers=_auth(up.data_dir), timeout=30
    )
    children = up.descendants()
    code, _out, _err = up.stop(signal.SIGTERM)

    assert again.status_code == 200
    assert again.json()["state"]["client_ref"] == "MRN-7"
    assert [e["type"] for e in events.json()["events"]] == ["client_referred"]
    assert code == 0
    assert _gone(children) == []


def test_taken_api_port_is_a_one_line_error_naming_the_setting(up: Up) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", up.api_port))
        blocker.listen()
        code, stderr = up.run_to_exit()

    assert code == 1
    assert stderr.strip().count("\n") == 0, stderr
    assert "CAREPATH_API_PORT" in stderr
    assert str(up.api_port) in stderr


def test_unwritable_data_dir_is_a_one_line_error_naming_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    code, stderr = Up(blocker / "data").run_to_exit()

    assert code == 1
    assert "CAREPATH_DATA_DIR" in stderr
    assert stderr.strip().count("\n") == 0, stderr


def test_unreachable_external_temporal_names_the_setting_and_leaves_no_server(
    data_dir: Path,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    instance = Up(
        data_dir,
        {"CAREPATH_TEMPORAL_ADDRESS": address, "CAREPATH_TEMPORAL_CONNECT_TIMEOUT": "1"},
    )
    code, stderr = instance.run_to_exit()

    assert code == 1
    assert "CAREPATH_TEMPORAL_ADDRESS" in stderr
    assert address in stderr
    assert stderr.strip().count("\n") == 0, stderr
    assert _servers_using(data_dir) == [], "the embedded PostgreSQL outlived a failed start"


def test_unreachable_external_database_names_the_setting(data_dir: Path) -> None:
    instance = Up(
        data_dir,
        {"CAREPATH_DATABASE_URL": f"postgresql://carepath@127.0.0.1:{free_port()}/carepath"},
    )

    code, stderr = instance.run_to_exit()

    assert code == 1
    assert "CAREPATH_DATABASE_URL" in stderr
    assert stderr.strip().count("\n") == 0, stderr


def test_with_external_servers_up_starts_no_server_of_its_own(
    data_dir: Path, fresh_database_url: str, dev_server: WorkflowEnvironment
) -> None:
    address = dev_server.client.service_client.config.target_host
    instance = Up(
        data_dir,
        {"CAREPATH_TEMPORAL_ADDRESS": address, "CAREPATH_DATABASE_URL": fresh_database_url},
    )
    instance.start()
    try:
        health = instance.wait_healthy()
        children = instance.descendants()
        referral = httpx.post(
            instance.url + "/episodes",
            json={"client_ref": "MRN-8", "program_id": "adult-iop", "referral_source": "self"},
            headers=_auth(data_dir),
            timeout=30,
        )
    finally:
        code, out, _err = instance.stop(signal.SIGINT)

    assert health.json()["status"] == "ok"
    assert children == [], "no embedded server was started"
    assert referral.status_code == 201
    assert address in out
    assert "Temporal UI" not in out
    assert code == 0
