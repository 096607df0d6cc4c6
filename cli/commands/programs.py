"""`carepath programs list|show|diff`: the program versions the catalog holds, one
version's settings, and what changed between two versions (cli/programs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.output import OPTIONS

app = typer.Typer(
    help="The program versions the catalog holds, one version's settings, what changed.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

Directory = Annotated[
    Path | None,
    typer.Option(
        "--directory",
        help="a directory of program definitions (default: the built-in programs/)",
        file_okay=False,
    ),
]


@app.command("list")
def list_command(directory: Directory = None) -> int:
    """Every program: its current version, digest and recorded versions.

    Example: carepath programs list
    """
    from cli.programs import list_programs

    return list_programs(directory, as_json=OPTIONS.json)


@app.command("show")
def show_command(
    program: Annotated[str, typer.Argument(help="a program id, or `id@version`")],
    directory: Directory = None,
) -> int:
    """One version's settings (the current one unless `id@version` names another).

    Example: carepath programs show adult-iop@1
    """
    from cli.programs import show_program

    program_id, _, version = program.partition("@")
    if version and not version.isdigit():
        from cli.output import CliError

        raise CliError(f"{program!r}: a version is a whole number, as in adult-iop@2")
    return show_program(
        program_id, int(version) if version else None, as_json=OPTIONS.json, directory=directory
    )


@app.command("diff")
def diff_command(
    old: Annotated[str, typer.Argument(help="`id@version`, `id` (current) or a file")],
    new: Annotated[str, typer.Argument(help="`id@version`, `id` (current) or a file")],
    directory: Directory = None,
) -> int:
    """What changed from OLD to NEW; exit 0 if nothing did, 1 if settings changed.

    Example: carepath programs diff adult-iop@1 adult-iop
    """
    from cli.programs import diff_programs

    return diff_programs(old, new, as_json=OPTIONS.json, directory=directory)
