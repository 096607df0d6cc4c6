"""`carepath`: run the engine, talk to its API, audit episodes.

The command line is a Typer application. The top level is `app`; each group of commands
(`episode`, `audit`, `db`, ...) is a Typer application in its own module, named in
`GROUPS` and imported only when that group is the one being run (or completed by the
shell): `carepath --help` lists the groups from `GROUPS` alone, and `carepath episode
show` imports no server library (tests/unit/test_cli_startup.py checks both). Help is
drawn by Typer with Rich, imported without the two Rich modules it never uses here
(`cli/rich_help.py`: about 80 ms of `carepath --help`).

Adding a command group
----------------------
1. Write `cli/commands/<name>.py` with a module-level `app = typer.Typer(help=...)` and
   its commands. Keep its top-level imports light (typer, the standard library,
   `cli.output`, `cli.episodes` for the API client); import heavy modules inside the
   command functions.
2. Add `Group("<name>", "<one-line help>", "cli.commands.<name>")` to `GROUPS` below.
   Nothing else: `--help`, completion, the global options and error printing follow.

Global options (`--token`, `--api-url`, `--json`) may be given anywhere on the line:
`main()` moves them before the command, so they are never read as a command's field.
A command reads them from `cli.output.OPTIONS`. A command returns its exit status (or
None for 0); `CliError`, `StartupError` and domain errors print one line (a JSON object
on stderr under `--json`, with each field error of a refused command) and exit 1.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cli.output import OPTIONS, CliError, GlobalOptions, print_error
from workers.errors import StartupError


@dataclass(frozen=True)
class Group:
    """A top-level command group: its name, its help (all `carepath --help` needs), the
    module whose `app` (a typer.Typer) holds its commands, and whether it is listed."""

    name: str
    help: str
    module: str
    hidden: bool = False


GROUPS: tuple[Group, ...] = (
    Group("episode", "refer clients, record care, look at episodes (API)", "cli.commands.episode"),
    Group(
        "audit",
        "verify, replay, check determinism, export; the access log",
        "cli.commands.audit",
    ),
    Group("db", "database administration: migrate, rebuild, checkpoint", "cli.commands.db"),
    Group("users", "add, rotate, remove or list the users file's users", "cli.commands.users"),
    Group(
        "deploy",
        "prepare a container deployment: `deploy init` writes its keys, users and .env",
        "cli.commands.deploy",
    ),
    Group(
        "programs",
        "program versions: list them, show one, diff two",
        "cli.commands.programs",
    ),
    Group(
        "measures",
        "quality measures over a date range: engagement, follow-up, flow (API)",
        "cli.commands.measures",
    ),
    Group(
        "simulate",
        "a synthetic cohort on the time-skipping server; what-if between two programs",
        "cli.commands.simulate",
    ),
    Group("demo", "a scripted walkthrough of one episode on a running stack", "cli.commands.demo"),
    Group(
        "access-log",
        "deprecated: use `carepath audit access-log`",
        "cli.commands.access_log",
        hidden=True,
    ),
)
_GROUPS = {group.name: group for group in GROUPS}


class LazyGroup(TyperGroup):
    """The top level: its own commands, plus `GROUPS`, each imported when resolved."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(g.name for g in GROUPS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        group = _GROUPS.get(cmd_name)
        if command is not None or group is None:
            return command
        # Listed in help: a stand-in with the group's help, importing nothing.
        return TyperGroup(name=group.name, help=group.help, hidden=group.hidden)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] in _GROUPS and args[0] not in self.commands:
            self.commands[args[0]] = load_group(_GROUPS[args[0]])
        return super().resolve_command(ctx, args)


_COMPLETION_OPTIONS = {"install_completion", "show_completion"}


def load_group(group: Group) -> Any:
    """The group's click command, built from its module's Typer app."""
    module = importlib.import_module(group.module)
    command = typer.main.get_command(module.app)
    # Completion is installed from the top level (`carepath --install-completion`); a
    # group's own copy of those options would only crowd its help.
    command.params = [p for p in command.params if p.name not in _COMPLETION_OPTIONS]
    command.name = group.name
    command.hidden = group.hidden
    return command


app = typer.Typer(
    name="carepath",
    cls=LazyGroup,
    help="Run the CarePath engine, talk to its API, audit episodes.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    token: Annotated[
        str | None,
        typer.Option("--token", help="bearer token (CAREPATH_TOKEN); anywhere on the line"),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option("--api-url", help="API base URL (CAREPATH_API_URL); anywhere on the line"),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="print JSON for scripts, errors too; anywhere on the line"),
    ] = False,
) -> None:
    OPTIONS.token = token or OPTIONS.token
    OPTIONS.api_url = api_url or OPTIONS.api_url
    OPTIONS.json = as_json or OPTIONS.json


DataDir = Annotated[
    str | None,
    typer.Option("--data-dir", help="where embedded servers keep data (CAREPATH_DATA_DIR)"),
]


@app.command("up")
def _up(data_dir: DataDir = None) -> int:
    """Start Temporal, PostgreSQL, the worker and the API; Ctrl-C stops."""
    import asyncio

    from cli.config import served
    from cli.up import run_up

    return asyncio.run(run_up(served(data_dir)))


@app.command("worker")
def _worker() -> int:
    """Run the Temporal worker against configured servers."""
    from cli.config import served
    from cli.serve import run_worker
    from workers.event_loop import run

    return run(run_worker(served()))


@app.command("api")
def _api() -> int:
    """Run the HTTP API against configured servers."""
    from cli.config import served
    from cli.serve import run_api
    from workers.event_loop import run

    return run(run_api(served()))


@app.command("codec-server")
def _codec_server() -> int:
    """Serve POST /encode and /decode for the Temporal UI and CLI."""
    import asyncio

    from cli.config import served
    from cli.serve import run_codec_server

    return asyncio.run(run_codec_server(served()))


# --- running -----------------------------------------------------------------------------

_VALUED = ("--token", "--api-url")
_FLAGS = ("--json",)
# Old spellings still accepted, with a note on stderr: (prefix, replacement).
_RENAMED: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("db", "verify"), ("audit", "verify")),
)


def hoist_global_options(argv: Sequence[str]) -> tuple[list[str], GlobalOptions]:
    """`argv` with the global options moved before the command, and their values.

    They may be written anywhere (`carepath episode show E --token T`); a command's own
    arguments never see them. Nothing after `--` is touched.
    """
    found = GlobalOptions()
    front: list[str] = []
    rest: list[str] = []
    items = list(argv)
    while items:
        arg = items.pop(0)
        if arg == "--":
            rest += [arg, *items]
            break
        name, equals, value = arg.partition("=")
        if name in _VALUED and (equals or items):
            value = value if equals else items.pop(0)
            setattr(found, name[2:].replace("-", "_"), value)
            front += [name, value]
        elif arg in _FLAGS:
            found.json = True
            front.append(arg)
        else:
            rest.append(arg)
    return front + rest, found


def _old_spellings(argv: list[str]) -> list[str]:
    """Rewrite a deprecated spelling to the current one, saying so on stderr."""
    words = [a for a in argv if not a.startswith("-")]
    for old, new in _RENAMED:
        if tuple(words[: len(old)]) == old:
            at = [argv.index(w) for w in old]
            fixed = list(argv)
            for index, word in zip(at, new, strict=True):
                fixed[index] = word
            print(
                f"carepath: note: `carepath {' '.join(old)}` is deprecated; "
                f"use `carepath {' '.join(new)}`",
                file=sys.stderr,
            )
            return fixed
    if len(words) >= 3 and words[:2] == ["episode", "do"]:
        # `episode do EPISODE COMMAND ...` -> `episode COMMAND EPISODE ...`
        at_do = argv.index("do")
        episode, command = argv[at_do + 1], argv[at_do + 2]
        print(
            f"carepath: note: `carepath episode do EPISODE {command}` is deprecated; "
            f"use `carepath episode {command} EPISODE`",
            file=sys.stderr,
        )
        return [*argv[:at_do], command, episode, *argv[at_do + 3 :]]
    return argv


def parse_only(argv: Sequence[str]) -> None:
    """Parse `argv` as `main` would, running nothing (deployment manifests' checks);
    raises click's UsageError when the command line is not accepted."""
    args, _ = hoist_global_options(argv)
    command = typer.main.get_command(app)
    ctx = command.make_context("carepath", _old_spellings(args))
    while isinstance(ctx.command, TyperGroup):
        rest = [*ctx._protected_args, *ctx.args]
        if not rest:
            return
        name, sub, rest = ctx.command.resolve_command(ctx, rest)
        assert sub is not None  # resolve_command fails on an unknown name
        ctx = sub.make_context(name, rest, parent=ctx)


HELP_FLAGS = frozenset({"--help", "-h"})


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args, found = hoist_global_options(argv)
    OPTIONS.token, OPTIONS.api_url, OPTIONS.json = found.token, found.api_url, found.json
    args = _old_spellings(args)
    from typer import Abort
    from typer._click.exceptions import ClickException

    if not args or HELP_FLAGS.intersection(args):
        # Help is drawn with Rich: import it without the parts it never uses here.
        from cli.rich_help import import_rich_help

        import_rich_help()
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="carepath", standalone_mode=False)
    except ClickException as exc:
        if OPTIONS.json:
            print_error(exc.format_message())
        else:
            exc.show()
        return exc.exit_code
    except Abort:
        return 1
    except CliError as exc:
        print_error(str(exc), exc.problem)
        return 1
    except _one_line_errors() as exc:
        print_error(str(exc))
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; that is not an error of ours.
        sys.stderr.close()
        return 0
    return result if isinstance(result, int) else 0


def _one_line_errors() -> tuple[type[Exception], ...]:
    """The errors printed as one line. A domain error can only have been raised if its
    module was loaded, so it is looked up rather than imported (the domain is heavy)."""
    domain_errors = sys.modules.get("domain.errors")
    if domain_errors is None:
        return (StartupError,)
    return (StartupError, domain_errors.CarePathError)


def run() -> None:
    """The console script's entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
