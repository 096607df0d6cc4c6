"""What the command line prints: Rich tables that fit the terminal, JSON for scripts,
errors (one line, or JSON under `--json`), progress bars, and times on the clinic's clock.

Rich is imported when something is printed, not when the module is, so that a command
that prints nothing of this (`carepath --help` prints through Typer) does not pay for it.
Everything goes through `out()`/`err()`, Rich consoles on stdout and stderr; on a pipe
they print plain text, without colour, at the width of the longest line.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@dataclass
class GlobalOptions:
    """`--token`, `--api-url` and `--json`: given anywhere on the line (cli.main moves them
    to the front), read by every command."""

    token: str | None = None
    api_url: str | None = None
    json: bool = False


OPTIONS = GlobalOptions()


class CliError(Exception):
    """Raised to print one line (or, under `--json`, one JSON object) to stderr and exit 1.

    `problem` is the API's problem document when the error is its answer; its `errors`
    (each refused field) are printed too.
    """

    def __init__(self, message: str, problem: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.problem = dict(problem) if problem else None


def _console(stderr: bool) -> Console:
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # A pipe (or a test's captured stream) has no width: never wrap or cut what is printed.
    width = None if stream.isatty() else 10_000
    return Console(file=stream, width=width, highlight=False, soft_wrap=not stream.isatty())


def out() -> Console:
    """A console on stdout (made per call: tests and threads swap sys.stdout)."""
    return _console(stderr=False)


def err() -> Console:
    return _console(stderr=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def print_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None
) -> None:
    """A table at most as wide as the terminal (long cells wrap); plain columns on a pipe."""
    if not sys.stdout.isatty():
        _plain_table(header, rows)
        return
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, expand=False, pad_edge=False)
    for name in header:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    out().print(table)


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns padded with spaces: what scripts and tests read (`cut`, `awk`, `split()`)."""
    cells = [[("" if c is None else str(c)) for c in row] for row in (header, *rows)]
    widths = [max(len(c) for c in column) for column in zip(*cells, strict=False)]
    for row in cells:
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        sys.stdout.write(line + "\n")


def print_error(message: str, problem: Mapping[str, Any] | None = None) -> None:
    """An error on stderr: one line and each refused field, or one JSON object."""
    if OPTIONS.json:
        document: dict[str, Any] = {"error": message}
        if problem:
            document["problem"] = dict(problem)
        sys.stderr.write(json.dumps(document, ensure_ascii=False) + "\n")
        return
    lines = field_errors(problem)
    if lines:
        # The API points at its `errors` member; here they are printed right below.
        message = message.replace("; see 'errors' for each field", "")
    sys.stderr.write(f"carepath: error: {message}\n")
    for line in lines:
        sys.stderr.write(f"  {line}\n")


def field_errors(problem: Mapping[str, Any] | None) -> list[str]:
    """Each field error of a refused command (`errors` of a 422/409 problem), one per line."""
    lines = []
    for item in (problem or {}).get("errors") or []:
        if not isinstance(item, Mapping):
            lines.append(str(item))
            continue
        where = item.get("loc") or item.get("field") or item.get("rule") or ""
        if isinstance(where, list | tuple):
            where = ".".join(str(p) for p in where if p != "body")
        text = item.get("msg") or item.get("message") or item.get("detail") or json.dumps(item)
        lines.append(f"{where}: {text}" if where else str(text))
    return lines


def warn(message: str) -> None:
    sys.stderr.write(message + "\n")


# --- progress ------------------------------------------------------------------------------


def shows_progress() -> bool:
    """A bar is drawn only for a person: on a terminal, and not under `--json`."""
    return not OPTIONS.json and sys.stdout.isatty() and sys.stderr.isatty()


@contextmanager
def progress(
    label: str, unit: str, finished: str = "{label}: {done}/{total} {unit} (100%)"
) -> Iterator[Callable[[int, int | None], None]]:
    """A callback `(done, total)` drawing a Rich progress bar on stderr (`total` None while
    unknown); elsewhere it prints only the final count (`finished`) to stderr."""
    if not shows_progress():
        ended: list[tuple[int, int]] = []

        def note(done: int, total: int | None, *_: Any) -> None:
            if total is not None and done == total and not ended:
                ended.append((done, total))

        yield note
        if ended and not OPTIONS.json:
            done, total = ended[0]
            warn(finished.format(label=label, done=done, total=total, unit=unit))
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(unit), console=err()
    ) as bar:
        task = bar.add_task(label, total=None)

        def advance(done: int, total: int | None, *_: Any) -> None:
            bar.update(task, completed=done, total=total)

        yield advance


# --- times on the clinic's clock -----------------------------------------------------------

_ISO_MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$")
_TIMEZONE_LINE = re.compile(r"^timezone:\s*['\"]?([A-Za-z0-9_/+-]+)['\"]?\s*$", re.MULTILINE)
_ID_LINE = re.compile(r"^id:\s*['\"]?([A-Za-z0-9_.-]+)['\"]?\s*$", re.MULTILINE)


@dataclass
class Clock:
    """Shows a UTC moment on a program's clock (its IANA `timezone`).

    The zone of a program comes from the answer when it names one, else from the program
    files of this machine (CAREPATH_PROGRAMS_DIR or ./programs, read for their `id:` and
    `timezone:` lines only), else the machine's own zone.
    """

    zones: dict[str, str] = field(default_factory=dict)

    def zone_of(self, program_id: str | None, named: str | None = None) -> str | None:
        if named:
            return named
        if program_id is None:
            return None
        return self.zones.get(program_id) or _program_zones().get(program_id)

    def show(self, value: Any, zone: str | None) -> str:
        """`value` as local `YYYY-MM-DD HH:MM ZONE` if it is an ISO moment, else as text."""
        if not isinstance(value, str) or not _ISO_MOMENT.match(value):
            return _cell(value)
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        try:
            local = moment.astimezone(ZoneInfo(zone)) if zone else moment.astimezone()
        except (ZoneInfoNotFoundError, ValueError):
            local = moment
        return local.strftime("%Y-%m-%d %H:%M %Z").strip()


@cache
def _program_zones() -> dict[str, str]:
    env = {name.lower(): value for name, value in os.environ.items()}
    folder = Path(env.get("carepath_programs_dir") or "programs")
    zones: dict[str, str] = {}
    try:
        files = sorted(folder.glob("*.yaml"))
    except OSError:
        return zones
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            continue
        ident, zone = _ID_LINE.search(text), _TIMEZONE_LINE.search(text)
        if ident and zone:
            zones[ident.group(1)] = zone.group(1)
    return zones


def _cell(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


cell = _cell
