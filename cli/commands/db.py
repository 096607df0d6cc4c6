"""`carepath db ...`: migrate the schema, rebuild the read models, take a checkpoint.

Verifying is `carepath audit verify`; `carepath db verify` still works, as its deprecated
spelling (cli.main rewrites it and says so on stderr).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Database administration: migrate, rebuild the read models, checkpoint.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _run(command: str, **fields: object) -> int:
    import asyncio

    from cli import db as db_commands
    from cli.config import served

    return asyncio.run(
        db_commands.run_db(served(), argparse.Namespace(db_command=command, **fields))
    )


@app.command("migrate")
def migrate() -> int:
    """Apply pending schema migrations, as the schema's owner."""
    import asyncio

    from cli.config import served
    from cli.serve import run_migrate

    return asyncio.run(run_migrate(served()))


@app.command("rebuild-projections")
def rebuild_projections() -> int:
    """Rebuild every read model from the events, beside the live ones, then swap them in."""
    return _run("rebuild-projections")


@app.command("checkpoint")
def checkpoint(
    export: Annotated[
        Path | None,
        typer.Option("--export", metavar="FILE", help="also write it as JSON to FILE"),
    ] = None,
) -> int:
    """Sign and store the head of every stream now."""
    return _run("checkpoint", export=export)
