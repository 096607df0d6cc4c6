"""How long `carepath` takes to start: `--help`, `episode show` until it fails to connect,
and a staff command's `--help`.

Each figure is the median wall time of fresh interpreters (`[sys.executable, "-m",
"cli.main", ...]`), next to the bare interpreter (`python -c pass`) as the baseline.
`episode show` is pointed at a local port nothing listens on, so the connection is
refused at once and what is measured is the start-up work before it.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _closed_port() -> int:
    """A local port that nothing listens on (bound, then released at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _median_ms(argv: Sequence[str], repeats: int, env: dict[str, str]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def run(repeats: int = 10) -> dict[str, float]:
    """Median wall milliseconds of `repeats` runs of each: the bare interpreter,
    `carepath --help`, `carepath episode show` against a refused connection,
    `carepath episode record-assessment --help`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(ROOT), env.get("PYTHONPATH"))))
    env["CAREPATH_API_URL"] = f"http://127.0.0.1:{_closed_port()}"
    env.pop("CAREPATH_TOKEN", None)
    cli = [sys.executable, "-m", "cli.main"]
    return {
        "python_bare_ms": _median_ms([sys.executable, "-c", "pass"], repeats, env),
        "cli_help_ms": _median_ms([*cli, "--help"], repeats, env),
        "cli_episode_show_ms": _median_ms([*cli, "episode", "show", "ep-bench"], repeats, env),
        # A staff command's help: its options are built from the committed catalog.
        "cli_staff_help_ms": _median_ms(
            [*cli, "episode", "record-assessment", "--help"], repeats, env
        ),
    }


def report(figures: dict[str, float]) -> None:
    for name, value in figures.items():
        print(f"{name:<22} {value:>8.1f} ms")


if __name__ == "__main__":
    report(run())
