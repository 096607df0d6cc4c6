"""`carepath`: run the engine, talk to its API, audit episodes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cli.episodes import CliError
from workers.errors import StartupError

if TYPE_CHECKING:
    from workers.settings import Settings

# Starting fast: this module and what it imports at the top stay light (the standard
# library, cli.episodes, workers.errors). A command's own modules (FastAPI, Temporal,
# asyncpg, the store, pydantic settings, httpx) are imported by its handler, and its
# arguments are declared only when it is the one being run, so `carepath --help` and
# `carepath episode show` load nothing they do not use (tests/unit/test_cli_startup.py).


@dataclass(frozen=True)
class Command:
    """A top-level subcommand: its name and help (all `carepath --help` needs), the
    function declaring its arguments, and the function running it (an exit status)."""

    name: str
    help: str
    declare: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def build_parser(only: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only`, just those commands' arguments are declared (every
    other command keeps its name and help), importing no other command's modules."""
    parser = argparse.ArgumentParser(prog="carepath", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for entry in COMMANDS:
        chosen = sub.add_parser(entry.name, help=entry.help)
        if only is None or entry.name in only:
            entry.declare(chosen)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(only=_commands_named(argv)).parse_args(argv)
    try:
        return _BY_NAME[args.command].run(args)
    except _one_line_errors() as err:
        print(f"carepath: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; that is not an error of ours.
        sys.stderr.close()
        return 0


def _commands_named(argv: Sequence[str]) -> set[str]:
    """The subcommand the arguments choose (none for `carepath --help`): the first of them
    that is not an option, as the top level has no options but --help."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return set() if first is None else {first}


def _one_line_errors() -> tuple[type[Exception], ...]:
    """The errors printed as one line. A domain error can only have been raised if its
    module was loaded, so it is looked up rather than imported (the domain is heavy)."""
    domain_errors = sys.modules.get("domain.errors")
    if domain_errors is None:
        return (StartupError, CliError)
    return (StartupError, CliError, domain_errors.CarePathError)


# --- settings and clients ------------------------------------------------------------------


def _settings(args: argparse.Namespace) -> Settings:
    from pydantic import ValidationError

    from workers.settings import Settings

    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    try:
        return Settings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        name = "CAREPATH_" + "_".join(str(p) for p in first["loc"]).upper()
        raise StartupError(f"setting {name} is invalid: {first['msg']}") from None


def _served(args: argparse.Namespace) -> Settings:
    """The settings of a command that runs servers, with logging configured."""
    from workers.logging import configure_logging

    settings = _settings(args)
    configure_logging(settings.log_format, settings.log_level)
    return settings


# --- the commands --------------------------------------------------------------------------


def _declare_up(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", help="where embedded servers keep data (CAREPATH_DATA_DIR)")


def _declare_nothing(parser: argparse.ArgumentParser) -> None:
    pass


def _run_up(args: argparse.Namespace) -> int:
    import asyncio

    from cli.up import run_up

    return asyncio.run(run_up(_served(args)))


def _run_worker(args: argparse.Namespace) -> int:
    import asyncio

    from cli.serve import run_worker

    return asyncio.run(run_worker(_served(args)))


def _run_api(args: argparse.Namespace) -> int:
    import asyncio

    from cli.serve import run_api

    return asyncio.run(run_api(_served(args)))


def _run_codec_server(args: argparse.Namespace) -> int:
    import asyncio

    from cli.serve import run_codec_server

    return asyncio.run(run_codec_server(_served(args)))


def _declare_db(parser: argparse.ArgumentParser) -> None:
    from cli import db as db_commands

    db_sub = parser.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_sub.add_parser("migrate", help="apply pending schema migrations")
    db_commands.add_db_commands(db_sub)


def _run_db(args: argparse.Namespace) -> int:
    import asyncio

    from cli import db as db_commands

    settings = _served(args)
    if args.db_command in db_commands.COMMANDS:
        return asyncio.run(db_commands.run_db(settings, args))
    from cli.serve import run_migrate

    return asyncio.run(run_migrate(settings))


def _declare_episode(parser: argparse.ArgumentParser) -> None:
    from cli import episodes

    episodes.configure(parser)


def _run_episode(args: argparse.Namespace) -> int:
    from cli import episodes

    episodes.run(episodes.ApiClient.configured(args.api_url, args.token), args)
    return 0


def _declare_audit(parser: argparse.ArgumentParser) -> None:
    from cli import access
    from cli import audit as audit_cli

    audit_cli.configure(parser)
    access.attach_to_audit(parser)


def _run_audit(args: argparse.Namespace) -> int:
    if getattr(args, "access_log", False):
        return _run_access_log(args)
    from cli import audit as audit_cli

    return audit_cli.run(_settings(args), args)


def _declare_access_log(parser: argparse.ArgumentParser) -> None:
    from cli import access

    access.configure(parser)


def _run_access_log(args: argparse.Namespace) -> int:
    from cli import access
    from cli.episodes import ApiClient

    return access.run(ApiClient.configured(args.api_url, args.token), args)


def _declare_users(parser: argparse.ArgumentParser) -> None:
    from cli import users as users_cli

    users_cli.configure(parser)


def _run_users(args: argparse.Namespace) -> int:
    from cli import users as users_cli

    return users_cli.run(_settings(args), args)


def _declare_deploy(parser: argparse.ArgumentParser) -> None:
    from cli import deploy

    deploy.configure(parser)


def _run_deploy(args: argparse.Namespace) -> int:
    from cli import deploy

    return deploy.run(args)


COMMANDS: tuple[Command, ...] = (
    Command(
        "up",
        "start Temporal, PostgreSQL, the worker and the API; Ctrl-C stops",
        _declare_up,
        _run_up,
    ),
    Command(
        "worker",
        "run the Temporal worker against configured servers",
        _declare_nothing,
        _run_worker,
    ),
    Command("api", "run the HTTP API against configured servers", _declare_nothing, _run_api),
    Command(
        "codec-server",
        "serve POST /encode and /decode for the Temporal UI and CLI (payload keys, "
        "users, access log as configured)",
        _declare_nothing,
        _run_codec_server,
    ),
    Command("db", "database administration", _declare_db, _run_db),
    Command(
        "episode",
        "refer clients, record care, look at episodes (API)",
        _declare_episode,
        _run_episode,
    ),
    Command(
        "audit",
        "replay, verify, check determinism, export (reads the servers directly)",
        _declare_audit,
        _run_audit,
    ),
    Command(
        "access-log",
        "who read or changed episode data (auditors)",
        _declare_access_log,
        _run_access_log,
    ),
    Command(
        "users",
        "add, rotate, remove or list the users file's users",
        _declare_users,
        _run_users,
    ),
    Command(
        "deploy",
        "prepare a container deployment: `deploy init` writes its keys, users and .env",
        _declare_deploy,
        _run_deploy,
    ),
)
_BY_NAME = {entry.name: entry for entry in COMMANDS}


if __name__ == "__main__":
    sys.exit(main())
