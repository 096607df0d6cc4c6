"""`carepath up` as an operator runs it: a real process tree, signals, restarts, bad settings."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from api_users import write_users_file
from temporalio.testing import WorkflowEnvironment

from api.auth import demo_tokens
from devstack.processes import free_port
from domain.actors import Role
from testing.keys import CHAIN_KEY
from testing.up import CAREPATH, UpStack
from workers.health import recent_pollers
from workers.payload_codec import new_keys_document
from workers.temporal import PLAIN_CONVERTER, connect
from workers.worker import worker_identity

pytestmark = pytest.mark.integration

READY_TIMEOUT_S = 90


class Up(UpStack):
    """`UpStack` as these tests drive it: its output beside the data dir (some tests need
    the data dir not to exist before `carepath up` creates it), and failures that name
    what the stack printed."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        super().__init__(data_dir, extra_env)
        self.temporal_port = int(self.env["CAREPATH_TEMPORAL_PORT"])
        self.out_path = data_dir.parent / f"{data_dir.name}.up.out"
        self.err_path = data_dir.parent / f"{data_dir.name}.up.err"

    def start(self) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.out_path.open("ab") as out, self.err_path.open("ab") as err:
            self.proc = subprocess.Popen([CAREPATH, "up"], env=self.env, stdout=out, stderr=err)

    def output(self) -> tuple[str, str]:
        return tuple(  # type: ignore[return-value]
            path.read_text(errors="replace") if path.exists() else ""
            for path in (self.out_path, self.err_path)
        )

    def wait_healthy(self, path: str = "/healthz") -> httpx.Response:
        """Wait for `path` to answer 200 and for the banner: until it is printed, the
        supervisor is still starting up, and a child that dies then fails the start-up."""
        try:
            self.wait_ready(READY_TIMEOUT_S, path)
        except (RuntimeError, TimeoutError) as exc:
            pytest.fail(f"carepath up did not become healthy: {exc}")
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "CarePath is running." not in self.output()[0]:
            if time.monotonic() > deadline or self.proc is None or self.proc.poll() is not None:
                pytest.fail(f"carepath up printed no banner: {self.output()[1]}")
            time.sleep(0.05)
        return httpx.get(self.url + path, timeout=5)

    def role(self, role: str) -> psutil.Process:
        """The running `carepath <role>` child (worker or api)."""
        return self.process(role)

    def server(self, name: str) -> psutil.Process:
        """The embedded server `name` (temporal, or postgres: its postmaster)."""
        return self.process(name)

    def wait_for_new(self, role: str, old_pid: int, timeout: float = 15.0) -> psutil.Process:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(LookupError):
                child = self.role(role)
                if child.pid != old_pid:
                    return child
            time.sleep(0.05)
        pytest.fail(f"no new {role} child within {timeout} s: {self.output()[1]}")

    def log_events(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines the tree wrote with this `event`."""
        return [record for record in self.log_lines() if record.get("event") == event]

    def signal_and_wait(self, sig: int = signal.SIGINT) -> tuple[int, str, str]:
        assert self.proc is not None
        self.proc.send_signal(sig)
        self.proc.wait(timeout=60)
        return (self.proc.returncode, *self.output())

    def kill_tree(self) -> None:
        """Whatever state the test left it in: kill carepath up and every descendant."""
        if self.proc is None:
            return
        tree = self.descendants()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for child in tree:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(tree, timeout=10)

    def run_to_exit(self) -> tuple[int, str]:
        result = subprocess.run(
            [CAREPATH, "up"], env=self.env, capture_output=True, text=True, timeout=120
        )
        return result.returncode, result.stderr


@pytest.fixture
def data_dir(server_data_dir: Path) -> Path:
    # Not under pytest's tmp_path: the embedded PostgreSQL runs as another user there when
    # we are root, and must traverse every parent (see `server_directory`).
    return server_data_dir / "carepath-data"


@pytest.fixture
def up(data_dir: Path) -> Iterator[Up]:
    instance = Up(data_dir)
    try:
        yield instance
    finally:
        instance.kill_tree()


def _servers_using(data_dir: Path) -> list[psutil.Process]:
    """Processes whose command line mentions this test's data dir."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(str(data_dir) in arg for arg in process.info["cmdline"] or ()):
            found.append(process)
    return found


def _auth(data_dir: Path, role: Role = Role.INTAKE_COORDINATOR) -> dict[str, str]:
    """The demo token `carepath up` wrote for `role` into the data dir's users file."""
    return {"Authorization": f"Bearer {demo_tokens(data_dir)[role]}"}


def _gone(processes: list[psutil.Process]) -> list[psutil.Process]:
    _, alive = psutil.wait_procs(processes, timeout=15)
    return alive


def test_up_serves_refers_stops_cleanly_and_resumes(up: Up) -> None:
    # Checkpoints every 1.2 s, so the worker's schedule shows within the test.
    up.env["CAREPATH_CHECKPOINT_INTERVAL_MINUTES"] = "0.02"
    up.start()
    health = up.wait_healthy()
    assert health.json()["status"] == "ok"
    children = up.descendants()
    names = {p.name() for p in children}
    assert {"temporal", "postgres"} <= names
    # The worker and the API are processes of their own, handed the generated key.
    assert "CAREPATH_CHECKPOINT_KEY" in up.role("worker").environ()
    # The chain key is generated beside it, outside the database, and handed on likewise.
    assert (up.data_dir / "chain.key").stat().st_mode & 0o777 == 0o600
    assert "CAREPATH_CHAIN_KEY" in up.role("worker").environ()
    assert up.role("api").pid != up.role("worker").pid

    referral = httpx.post(
        up.url + "/episodes",
        json={"client_ref": "MRN-7", "program_id": "adult-iop", "referral_source": "court"},
        headers=_auth(up.data_dir),
        timeout=30,
    )
    assert referral.status_code == 201, referral.text
    episode_id = referral.json()["episode_id"]
    _wait_for(lambda: up.log_events("checkpoint_taken"), "the worker's checkpoint")
    _wait_for(
        lambda: list((up.data_dir / "checkpoints").glob("checkpoint-*.json")),
        "a published checkpoint",
    )

    code, out, err = up.signal_and_wait(signal.SIGINT)
    assert "checkpoints_disabled" not in err
    assert code == 0
    assert "API" in out
    assert "/docs" in out
    assert "Ctrl-C" in out
    tokens = demo_tokens(up.data_dir)
    assert tokens[Role.AUDITOR] in out
    users_text = (up.data_dir / "users.yaml").read_text()
    assert [t for t in tokens.values() if t in users_text] == [], "a plain token in users.yaml"
    assert users_text.count("\n  sha256:") == len(tokens) == 5
    assert (up.data_dir / "users.yaml").stat().st_mode & 0o777 == 0o600
    assert (up.data_dir / "demo-tokens.txt").stat().st_mode & 0o777 == 0o600
    assert _gone(children) == [], "a child process outlived carepath up"

    up.start()
    up.wait_healthy()
    again = httpx.get(f"{up.url}/episodes/{episode_id}", headers=_auth(up.data_dir), timeout=30)
    events = httpx.get(
        f"{up.url}/episodes/{episode_id}/events", headers=_auth(up.data_dir), timeout=30
    )
    # A user added while the API runs can use their token at once; it is printed once.
    added = subprocess.run(
        [CAREPATH, "users", "add", "nia.nurse", "--role", "clinician", "--program", "adult-iop"],
        env=up.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    new_token = added.stdout.strip()
    as_nia = httpx.get(
        f"{up.url}/episodes", headers={"Authorization": f"Bearer {new_token}"}, timeout=30
    )
    oversized = httpx.post(
        up.url + "/episodes",
        content=b"{" + b" " * (1024 * 1024) + b"}",
        headers={**_auth(up.data_dir), "Content-Type": "application/json"},
        timeout=30,
    )
    children = up.descendants()
    code, second_out, _err = up.signal_and_wait(signal.SIGTERM)

    assert added.returncode == 0, added.stderr
    assert new_token not in (up.data_dir / "users.yaml").read_text()
    assert as_nia.status_code == 200, as_nia.text
    assert oversized.status_code == 413
    assert oversized.headers["cache-control"] == "no-store"
    # The second start prints no token: it says where new ones come from.
    second_banner = second_out[len(out) :]
    assert "CarePath is running." in second_banner
    assert not [t for t in tokens.values() if t in second_banner]
    assert "carepath users rotate" in second_banner
    assert again.status_code == 200
    assert again.json()["state"]["client_ref"] == "MRN-7"
    assert [e["type"] for e in events.json()["events"]] == ["client_referred"]
    assert code == 0
    assert _gone(children) == []


def test_given_carepath_up_when_it_has_run_then_its_data_dir_is_private_and_the_roles_use_the_application_role(
    up: Up,
) -> None:
    up.start()
    up.wait_healthy()
    referral = httpx.post(
        up.url + "/episodes",
        json={"client_ref": "MRN-8", "program_id": "adult-iop", "referral_source": "court"},
        headers=_auth(up.data_dir),
        timeout=30,
    )
    role_envs = [up.role(role).environ() for role in ("worker", "api")]
    code, _out, _err = up.signal_and_wait(signal.SIGINT)

    assert referral.status_code == 201, referral.text
    assert code == 0
    for env in role_envs:
        assert env["CAREPATH_DATABASE_URL"].startswith("postgresql://carepath_app:")
        assert "CAREPATH_DATABASE_OWNER_URL" not in env
    files = {path.name: path.stat().st_mode & 0o777 for path in up.data_dir.iterdir()}
    written = {
        "temporal.db",
        "temporal.log",
        "postgres.log",
        "postgres.passwords",
        "users.yaml",
        "checkpoint.key",
    }
    assert written <= set(files)
    assert {name: m for name, m in files.items() if name != "postgres" and m != 0o600} == {}
    assert files["postgres"] == 0o700
    assert up.data_dir.stat().st_mode & 0o777 == (0o710 if os.geteuid() == 0 else 0o700)


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
        {
            "CAREPATH_TEMPORAL_ADDRESS": address,
            "CAREPATH_TEMPORAL_CONNECT_TIMEOUT": "1",
            "CAREPATH_PAYLOAD_KEYS": new_keys_document(),
        },
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
        {
            "CAREPATH_TEMPORAL_ADDRESS": address,
            "CAREPATH_DATABASE_URL": fresh_database_url,
            "CAREPATH_PAYLOAD_KEYS": new_keys_document(),
            "CAREPATH_CHAIN_KEY": CHAIN_KEY.decode(),
        },
    )
    instance.start()
    try:
        health = instance.wait_healthy()
        names = {child.name() for child in instance.descendants()}
        referral = httpx.post(
            instance.url + "/episodes",
            json={"client_ref": "MRN-8", "program_id": "adult-iop", "referral_source": "self"},
            headers=_auth(data_dir),
            timeout=30,
        )
    finally:
        code, out, _err = instance.signal_and_wait(signal.SIGINT)
        instance.kill_tree()

    assert health.json()["status"] == "ok"
    assert not names & {"temporal", "postgres"}, "no embedded server was started"
    assert referral.status_code == 201
    assert address in out
    assert "Temporal UI" not in out
    assert code == 0


def test_killed_worker_is_restarted_while_the_api_keeps_answering(
    up: Up, record_property: Any
) -> None:
    up.start()
    up.wait_healthy("/readyz")
    worker = up.role("worker")

    with _liveness_watch(up.url) as liveness:
        killed_at = time.monotonic()
        worker.kill()
        new_worker = up.wait_for_new("worker", worker.pid)
        polling_s = _wait_until_polling(up, new_worker.pid, since=killed_at)
        ready = _wait_for(
            lambda: httpx.get(up.url + "/readyz", timeout=5).status_code == 200, "/readyz 200"
        )
        ready_s = time.monotonic() - killed_at
    stop_began = time.monotonic()
    code, _out, _err = up.signal_and_wait(signal.SIGTERM)
    stop_s = time.monotonic() - stop_began

    record_property("worker_kill_to_new_poller_s", round(polling_s, 2))
    record_property("worker_kill_to_readyz_200_s", round(ready_s, 2))
    record_property("sigterm_stop_s", round(stop_s, 2))
    print(f"worker SIGKILL -> new worker polling {polling_s:.2f} s, /readyz 200 {ready_s:.2f} s")
    print(f"SIGTERM -> carepath up exited {stop_s:.2f} s")
    assert ready
    assert polling_s < 15
    assert liveness.failures == [], "the API stopped answering while the worker was down"
    assert len(liveness.answers) > 10
    [exited] = [e for e in up.log_events("child_exited") if e["child"] == "worker"]
    assert exited["pid"] == worker.pid
    assert exited["reason"] == "killed by SIGKILL"
    [restarted] = [e for e in up.log_events("child_restarted") if e["child"] == "worker"]
    assert restarted["pid"] == new_worker.pid
    assert code == 0
    assert stop_s < 10


def test_killed_api_is_restarted_and_answers_again(up: Up, record_property: Any) -> None:
    up.start()
    up.wait_healthy("/readyz")
    api = up.role("api")
    worker_pid = up.role("worker").pid

    killed_at = time.monotonic()
    api.kill()
    new_api = up.wait_for_new("api", api.pid)
    _wait_for(lambda: _answers(up.url + "/livez"), "/livez 200 from the new API")
    back_s = time.monotonic() - killed_at
    ready = httpx.get(up.url + "/readyz", timeout=5)
    worker_after = up.role("worker").pid
    code, _out, _err = up.signal_and_wait(signal.SIGTERM)

    record_property("api_kill_to_livez_200_s", round(back_s, 2))
    print(f"API SIGKILL -> /livez 200 again {back_s:.2f} s")
    assert back_s < 15
    assert ready.status_code == 200
    assert worker_after == worker_pid, "the worker was restarted with the API"
    [exited] = [e for e in up.log_events("child_exited") if e["child"] == "api"]
    assert exited["pid"] == api.pid
    assert exited["reason"] == "killed by SIGKILL"
    assert [e["pid"] for e in up.log_events("child_restarted")] == [new_api.pid]
    assert code == 0


def test_killed_servers_are_restarted_on_the_same_data(up: Up, record_property: Any) -> None:
    up.start()
    up.wait_healthy("/readyz")
    referral = httpx.post(
        up.url + "/episodes",
        json={"client_ref": "MRN-9", "program_id": "adult-iop", "referral_source": "self"},
        headers=_auth(up.data_dir),
        timeout=30,
    )
    assert referral.status_code == 201, referral.text
    episode_id = referral.json()["episode_id"]

    recovered: dict[str, float] = {}
    for server in ("temporal", "postgres"):
        old = up.server(server)
        killed_at = time.monotonic()
        old.kill()
        _wait_for(functools.partial(_server_replaced, up, server, old.pid), f"a new {server}")
        # The supervisor logs the restart once the new server is ready, which can come a
        # moment after the API has reconnected to it.
        _wait_for(
            functools.partial(_restart_logged, up, server),
            f"{server} restart logged",
            timeout=60,
            on_failure=up.tail,
        )
        _wait_for(lambda: _answers(up.url + "/readyz"), f"/readyz 200 after {server} came back")
        recovered[server] = time.monotonic() - killed_at
    episode = httpx.get(f"{up.url}/episodes/{episode_id}", headers=_auth(up.data_dir), timeout=30)
    code, _out, _err = up.signal_and_wait(signal.SIGTERM)

    for server, seconds in recovered.items():
        record_property(f"{server}_kill_to_readyz_200_s", round(seconds, 2))
        print(f"{server} SIGKILL -> /readyz 200 again {seconds:.2f} s")
    assert episode.status_code == 200, episode.text
    assert episode.json()["state"]["client_ref"] == "MRN-9"
    assert sorted(e["child"] for e in up.log_events("child_restarted")) == [
        "postgres",
        "temporal",
    ]
    assert code == 0


def test_sigterm_stops_the_whole_tree_within_10_s_even_with_a_frozen_worker(
    up: Up, record_property: Any
) -> None:
    up.start()
    up.wait_healthy("/readyz")
    tree = up.descendants()
    # SIGSTOP: the worker can no longer act on SIGTERM, only SIGKILL ends it.
    up.role("worker").suspend()

    assert up.proc is not None
    began = time.monotonic()
    up.proc.send_signal(signal.SIGTERM)
    code = up.proc.wait(timeout=30)
    took_s = time.monotonic() - began

    record_property("sigterm_stop_with_frozen_worker_s", round(took_s, 2))
    print(f"SIGTERM with a frozen worker -> carepath up exited {took_s:.2f} s")
    assert code == 0
    assert took_s < 10
    _, alive = psutil.wait_procs(tree, timeout=1)
    assert alive == [], f"left behind: {[p.pid for p in alive]}"
    assert [e["child"] for e in up.log_events("child_killed")] == ["worker"]


def test_api_without_a_worker_is_live_but_not_ready(
    tmp_path: Path, fresh_database_url: str, dev_server: WorkflowEnvironment
) -> None:
    port = free_port()
    queue = f"nobody-polls-{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "CAREPATH_DATA_DIR": str(tmp_path),
        "CAREPATH_API_PORT": str(port),
        "CAREPATH_TEMPORAL_ADDRESS": dev_server.client.service_client.config.target_host,
        "CAREPATH_DATABASE_URL": fresh_database_url,
        "CAREPATH_PAYLOAD_KEYS": new_keys_document(),
        "CAREPATH_CHAIN_KEY": CHAIN_KEY.decode(),
        "CAREPATH_TEMPORAL_TASK_QUEUE": queue,
        "CAREPATH_USERS_FILE": str(write_users_file(tmp_path)),
        "CAREPATH_LOG_FORMAT": "json",
    }
    with (tmp_path / "api.log").open("wb") as log:
        api = subprocess.Popen([CAREPATH, "api"], env=env, stdout=log, stderr=log)
    try:
        _wait_for(
            lambda: api.poll() is not None or _answers(f"http://127.0.0.1:{port}/livez"),
            "carepath api",
            on_failure=lambda: (tmp_path / "api.log").read_text(errors="replace"),
        )
        assert api.poll() is None, (tmp_path / "api.log").read_text(errors="replace")
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        live = httpx.get(f"http://127.0.0.1:{port}/livez", timeout=5)
    finally:
        api.terminate()
        try:
            api.wait(timeout=10)
        except subprocess.TimeoutExpired:
            api.kill()
            api.wait()

    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/problem+json"
    assert int(ready.headers["retry-after"]) > 0
    assert ready.json()["detail"].startswith("not ready: worker:")
    assert queue in ready.json()["detail"]


# --- helpers of the supervision tests ----------------------------------------------------


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _server_replaced(up: Up, name: str, old_pid: int) -> bool:
    try:
        return up.server(name).pid != old_pid
    except LookupError:
        return False


def _restart_logged(up: Up, name: str) -> bool:
    return any(e["child"] == name for e in up.log_events("child_restarted"))


def _wait_for(
    condition: Callable[[], Any],
    what: str,
    timeout: float = 15.0,
    on_failure: Callable[[], str] = lambda: "",
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{on_failure()}")


def _wait_until_polling(up: Up, pid: int, since: float, timeout: float = 15.0) -> float:
    """Seconds from `since` until Temporal lists a poller of the worker process `pid`."""

    async def wait() -> float | None:
        client = await connect(f"127.0.0.1:{up.temporal_port}", "default", PLAIN_CONVERTER)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            identities = await recent_pollers(client, "carepath-episodes")
            if worker_identity(pid=pid) in identities:
                return time.monotonic() - since
            await asyncio.sleep(0.05)
        return None

    # Its own loop in its own thread: the test session's event loop stays untouched.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        took_s = thread.submit(asyncio.run, wait()).result()
    if took_s is None:
        pytest.fail(f"the new worker (pid {pid}) did not poll within {timeout:.0f} s")
    return took_s


@dataclass
class _Liveness:
    answers: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _liveness_watch(url: str) -> Iterator[_Liveness]:
    """Ask /livez every 50 ms in a thread while the block runs; record what went wrong."""
    seen = _Liveness()
    done = threading.Event()

    def watch() -> None:
        with httpx.Client(timeout=2) as http:
            while not done.is_set():
                try:
                    status = http.get(url + "/livez").status_code
                except httpx.HTTPError as exc:
                    seen.failures.append(f"{type(exc).__name__}: {exc}")
                else:
                    seen.answers.append(status)
                    if status != 200:
                        seen.failures.append(f"status {status}")
                done.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
