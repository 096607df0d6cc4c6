"""Child processes owned by `carepath up`: port checks, start, and clean stop.

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
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devstack.files import open_private_log
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


# Ports handed out by `free_port`: below the kernel's ephemeral range (32768 and up by
# default), so an outgoing connection cannot take one between the check and the listen.
_FREE_PORTS = range(20000, 32000)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that were free a moment ago, for servers that start
    together: `free_port` alone may give the same port twice while none listens yet."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port(host)
        if port not in ports:
            ports.append(port)
    return ports


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for tests and ephemeral servers).

    Chosen at random outside the ephemeral range: a port the kernel picked with bind(0)
    is also one it may give any outgoing connection before our server listens on it.
    """
    for _ in range(200):
        port = random.choice(_FREE_PORTS)
        if port_is_free(host, port):
            return port
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
    log_path: Path | None,
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    extra_preexec: Callable[[], None] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a child in its own process group that dies with us.

    Its output is appended to log_path, or shares our stdout and stderr when log_path is
    None (CarePath's own roles, whose log lines belong with the supervisor's).
    """
    log_file = open_private_log(log_path) if log_path is not None else None

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
            stderr=subprocess.STDOUT if log_file is not None else None,
            env=None if env is None else dict(env),
            preexec_fn=preexec,
            user=user,
            close_fds=True,
        )
    finally:
        if log_file is not None:
            log_file.close()


async def wait_exit(proc: subprocess.Popen[bytes], within_s: float) -> bool:
    """Wait up to within_s seconds for proc to end (polling: no thread is left blocked)."""
    deadline = time.monotonic() + within_s
    while proc.poll() is None:
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 15.0
) -> int:
    """Send sig, wait up to timeout seconds, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        if not await wait_exit(proc, timeout):
            proc.kill()
            await wait_exit(proc, 5.0)
    return proc.returncode if proc.returncode is not None else -1


def describe_exit(code: int) -> str:
    """An exit status as an operator reads it: "exit code 1" or "killed by SIGKILL"."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
