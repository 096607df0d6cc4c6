"""`carepath access-log`: the deprecated spelling of `carepath audit access-log`."""

from __future__ import annotations

import functools
import sys
from typing import Any

import typer

from cli.commands.audit import access_log

app = typer.Typer(rich_markup_mode="rich", context_settings={"help_option_names": ["-h", "--help"]})


@app.command("access-log", help="Deprecated: use `carepath audit access-log`.")
@functools.wraps(access_log)
def deprecated_access_log(*args: Any, **kwargs: Any) -> int:
    print(
        "carepath: note: `carepath access-log` is deprecated; use `carepath audit access-log`",
        file=sys.stderr,
    )
    return access_log(*args, **kwargs)
