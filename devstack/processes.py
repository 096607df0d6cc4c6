"""Child server processes owned by `carepath up`: port checks, start, and clean stop.

Children are started in their own process group so that a Ctrl-C in the terminal reaches
only the supervisor, which then stops them in order. On Linux each child also asks the
kernel to send it SIGTERM if the supervisor dies, so even a killed supervisor leaves no
orphan server behind.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from workers.errors import StartupError

_PR_SET_PDEATHSIG = 1


def port_is_free(host: str, port: int) -> bool:
    """Whether a TCP listener could bind host:port right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(host: str, port: int, what: str, setting: str) -> None:
    """Raise a one-line StartupError naming the setting if host:port is taken."""
    if not port_is_free(host, port):
        raise StartupError(
            f"{what} cannot listen on {host}:{port}: the port is in use; "
            f"stop what uses it or choose another port with {setting}"
        )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for tests and ephemeral servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def die_with_parent() -> None:
    """In a child before exec: have the kernel SIGTERM it if the parent dies (Linux only).

    Changing credentials clears PR_SET_PDEATHSIG, so a child that switches user must call
    this after the switch (subprocess runs preexec_fn after it). The signal follows the
    thread that forked, so children are started from the event loop thread.
    """
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    user: str | None = None,
    extra_preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a server child in its own process group, its output appended to log_path."""
    log_file = log_path.open("ab")

    def preexec() -> None:
        os.setpgrp()
        die_with_parent()
        if extra_preexec is not None:
            extra_preexec()

    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec,
            user=user,
            close_fds=True,
        )
    finally:
        log_file.close()


async def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0
) -> int:
    """Send sig, wait up to timeout seconds, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.run_in_executor(None, proc.wait), timeout)
        except TimeoutError:
            proc.kill()
            await loop.run_in_executor(None, proc.wait)
    return proc.returncode if proc.returncode is not None else -1
