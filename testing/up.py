"""One real `carepath up` process tree, driven and inspected from outside, for fault tests.

`UpStack` starts `carepath up` with its own data dir and ports, writes its output to files
(a long run would fill a pipe and stall the stack), finds its children by role (the
worker, the API, the Temporal dev server, PostgreSQL) so a test can kill or freeze one,
and reads the event store it writes to.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil

from api.auth import demo_tokens
from devstack.embedded_postgres import EmbeddedPostgres
from devstack.processes import free_ports
from domain.actors import Role

CAREPATH = str(Path(sys.executable).parent / "carepath")


class UpStack:
    """`carepath up` in `data_dir`, on free ports, with its output in `data_dir/up.*.log`."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        # Five servers that start later: their ports must differ from one another too.
        self.api_port, self.postgres_port, temporal, ui, metrics = free_ports(5)
        self.env = {
            **os.environ,
            "CAREPATH_DATA_DIR": str(data_dir),
            "CAREPATH_API_PORT": str(self.api_port),
            "CAREPATH_TEMPORAL_PORT": str(temporal),
            "CAREPATH_TEMPORAL_UI_PORT": str(ui),
            "CAREPATH_POSTGRES_PORT": str(self.postgres_port),
            "CAREPATH_WORKER_METRICS_PORT": str(metrics),
            "CAREPATH_LOG_FORMAT": "json",
            **(extra_env or {}),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.out_path = data_dir / "up.out.log"
        self.err_path = data_dir / "up.err.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def database_url(self) -> str:
        return EmbeddedPostgres(self.data_dir, self.postgres_port).url

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.out_path.open("ab") as out, self.err_path.open("ab") as err:
            self.proc = subprocess.Popen([CAREPATH, "up"], env=self.env, stdout=out, stderr=err)

    def headers(self, role: Role) -> dict[str, str]:
        """The bearer header of the demo user `carepath up` wrote for `role`."""
        return {"Authorization": f"Bearer {demo_tokens(self.data_dir)[role]}"}

    def wait_ready(self, timeout: float = 90.0, path: str = "/readyz") -> float:
        """Block until `path` answers 200; return the seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.proc is not None and self.proc.poll() is not None:
                code = self.proc.returncode
                raise RuntimeError(f"carepath up exited early (status {code}):\n{self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=2).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.2)
        raise TimeoutError(f"{path} not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.out_path, self.err_path):
            if path.exists():
                text += "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) + "\n"
        return text

    def descendants(self) -> list[psutil.Process]:
        assert self.proc is not None
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def process(self, role: str) -> psutil.Process:
        """The child that plays `role`: worker, api, temporal or postgres (the postmaster)."""
        for child in self.descendants():
            try:
                cmdline = child.cmdline()
                name = child.name()
            except psutil.Error:
                continue
            if role == "postgres" and name == "postgres" and child.ppid() == self.proc.pid:  # type: ignore[union-attr]
                return child
            if role == "temporal" and name == "temporal":
                return child
            is_python = name.startswith(("python", "carepath"))
            if role in ("worker", "api") and is_python and role in cmdline[1:]:
                return child
        raise LookupError(f"no {role} process under carepath up")

    def postgres_processes(self) -> list[psutil.Process]:
        """The postmaster and every backend it forked."""
        postmaster = self.process("postgres")
        return [postmaster, *postmaster.children(recursive=True)]

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for child in self.descendants():
                with contextlib.suppress(psutil.Error):
                    child.kill()
            self.proc.kill()
            self.proc.wait()

    def log_lines(self) -> Iterator[dict[str, Any]]:
        """Every JSON log line the stack printed (both streams), in order."""
        for path in (self.out_path, self.err_path):
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("{"):
                    with contextlib.suppress(json.JSONDecodeError):
                        yield json.loads(line)
