"""`carepath users add|rotate|remove|list`: the users file's users (see cli.users)."""

from __future__ import annotations

import argparse
from typing import Annotated, Literal

import typer

app = typer.Typer(
    help="Add, rotate, remove or list the users file's users.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

# The roles a user may have (api.auth.READ_ROLES), repeated so that building the command
# does not import the API; tests/unit/test_users_cli.py checks they agree.
ROLE_NAMES = ("intake_coordinator", "clinician", "supervisor", "clinical_director", "auditor")

UserId = Annotated[str, typer.Argument(metavar="USER_ID")]
DataDir = Annotated[
    str | None, typer.Option("--data-dir", help="where the users file is (CAREPATH_DATA_DIR)")
]


def _run(data_dir: str | None, command: str, **fields: object) -> int:
    from cli import users as users_cli
    from cli.config import settings

    args = argparse.Namespace(users_command=command, data_dir=data_dir, **fields)
    return users_cli.run(settings(data_dir), args)


@app.command("add")
def add(
    user_id: UserId,
    role: Annotated[
        Literal["intake_coordinator", "clinician", "supervisor", "clinical_director", "auditor"],
        typer.Option("--role"),
    ],
    programs: Annotated[
        list[str] | None,
        typer.Option(
            "--program",
            help="a program the user works in (repeat for more); default '*', every one",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> int:
    """Add a user; prints their token once."""
    return _run(data_dir, "add", user_id=user_id, role=role, programs=programs or None)


@app.command("rotate")
def rotate(user_id: UserId, data_dir: DataDir = None) -> int:
    """Replace a user's token(s) with a new one; prints it once."""
    return _run(data_dir, "rotate", user_id=user_id)


@app.command("remove")
def remove(user_id: UserId, data_dir: DataDir = None) -> int:
    """Remove a user: their tokens stop working."""
    return _run(data_dir, "remove", user_id=user_id)


@app.command("list")
def listing(data_dir: DataDir = None) -> int:
    """The users, their roles and programs (no tokens)."""
    return _run(data_dir, "list")


@app.command("demo-token")
def demo_token(
    role: Annotated[
        Literal["intake_coordinator", "clinician", "supervisor", "clinical_director", "auditor"],
        typer.Argument(metavar="ROLE"),
    ],
    data_dir: DataDir = None,
) -> int:
    """Print the demo token of ROLE that the first `carepath up` wrote (for the README's
    walkthrough: `export CAREPATH_TOKEN=$(carepath users demo-token clinician)`)."""
    from api.auth import DEMO_TOKENS_FILE, demo_tokens
    from cli.config import settings
    from cli.output import CliError
    from domain.actors import Role

    folder = settings(data_dir).data_dir
    token = demo_tokens(folder).get(Role(role))
    if token is None:
        raise CliError(
            f"no demo token for {role} in {folder / DEMO_TOKENS_FILE}: it is written by the "
            "first `carepath up` of a data dir; issue one with `carepath users rotate USER_ID`"
        )
    print(token)
    return 0
