"""`carepath deploy init`: a container deployment's secrets and .env (see cli.deploy)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Prepare a container deployment.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _group() -> None:
    """Prepare a container deployment: `deploy init` writes its keys, users and .env."""


@app.command("init")
def init(
    directory: Annotated[
        Path | None, typer.Argument(metavar="[DIR]", help="default ./secrets")
    ] = None,
    env_file: Annotated[
        Path | None,
        typer.Option(
            "--env-file",
            help="the .env docker compose reads (default ./.env, beside docker-compose.yml)",
        ),
    ] = None,
    db_host: Annotated[
        str | None,
        typer.Option("--db-host", help="host:port of CarePath's PostgreSQL in the database URLs"),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace files that exist")] = False,
) -> int:
    """Write the keys, users file, database passwords and .env docker-compose.yml uses."""
    from cli import deploy

    args = argparse.Namespace(
        dir=directory or Path(deploy.DEFAULT_DIR),
        env_file=env_file or Path(deploy.DEFAULT_ENV_FILE),
        db_host=db_host or deploy.DEFAULT_DB_HOST,
        force=force,
    )
    return deploy.run(args)
