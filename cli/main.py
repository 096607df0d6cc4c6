"""`carepath`: run the engine, talk to its API, audit episodes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from cli import access, episodes
from cli import audit as audit_cli
from cli import db as db_commands
from cli import users as users_cli
from cli.episodes import CliError
from domain.errors import CarePathError
from workers.errors import StartupError
from workers.logging import configure_logging
from workers.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carepath", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up", help="start Temporal, PostgreSQL, the worker and the API; Ctrl-C stops"
    )
    up.add_argument("--data-dir", help="where embedded servers keep data (CAREPATH_DATA_DIR)")
    sub.add_parser("worker", help="run the Temporal worker against configured servers")
    sub.add_parser("api", help="run the HTTP API against configured servers")
    sub.add_parser(
        "codec-server",
        help="serve POST /encode and /decode for the Temporal UI and CLI (payload keys, "
        "users, access log as configured)",
    )

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_sub.add_parser("migrate", help="apply pending schema migrations")
    db_commands.add_db_commands(db_sub)

    episodes.add_parser(sub)
    audit_cli.add_parser(sub)
    access.add_parser(sub)
    access.attach_to_audit(sub.choices["audit"])
    users_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (StartupError, CarePathError, CliError) as err:
        print(f"carepath: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader (e.g. `| head`) went away; that is not an error of ours.
        sys.stderr.close()
        return 0


def _dispatch(args: argparse.Namespace) -> int:
    overrides = {}
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    if getattr(args, "api_url", None):
        overrides["api_url"] = args.api_url
    if getattr(args, "token", None):
        overrides["token"] = args.token
    try:
        settings = Settings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        name = "CAREPATH_" + "_".join(str(p) for p in first["loc"]).upper()
        raise StartupError(f"setting {name} is invalid: {first['msg']}") from None

    if args.command == "episode" or getattr(args, "access_log", False):
        token = settings.token.get_secret_value() if settings.token else None
        api = episodes.ApiClient(settings.api_url, token)
        if args.command == "episode":
            episodes.run(api, args)
            return 0
        return access.run(api, args)

    if args.command == "audit":
        return audit_cli.run(settings, args)
    if args.command == "users":
        return users_cli.run(settings, args)

    configure_logging(settings.log_format, settings.log_level)
    if args.command == "up":
        from cli.up import run_up

        return asyncio.run(run_up(settings))
    if args.command == "worker":
        from cli.serve import run_worker

        return asyncio.run(run_worker(settings))
    if args.command == "api":
        from cli.serve import run_api

        return asyncio.run(run_api(settings))
    if args.command == "codec-server":
        from cli.serve import run_codec_server

        return asyncio.run(run_codec_server(settings))
    if args.command == "db" and args.db_command in db_commands.COMMANDS:
        return asyncio.run(db_commands.run_db(settings, args))
    if args.command == "db":
        from cli.serve import run_migrate

        return asyncio.run(run_migrate(settings))
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects others


if __name__ == "__main__":
    sys.exit(main())
