"""`carepath`: run the engine, talk to its API, audit episodes."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from carepath.cli import audit as audit_cli
from carepath.cli import db as db_commands
from carepath.cli import episodes
from carepath.cli.episodes import CliError
from carepath.domain.errors import CarePathError
from carepath.workers.errors import StartupError
from carepath.workers.logging import configure_logging
from carepath.workers.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carepath", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up", help="start Temporal, PostgreSQL, the worker and the API; Ctrl-C stops"
    )
    up.add_argument("--data-dir", help="where embedded servers keep data (CAREPATH_DATA_DIR)")
    sub.add_parser("worker", help="run the Temporal worker against configured servers")
    sub.add_parser("api", help="run the HTTP API against configured servers")

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_sub.add_parser("migrate", help="apply pending schema migrations")
    db_commands.add_db_commands(db_sub)

    episode = sub.add_parser("episode", help="refer clients and look at episodes (via the API)")
    ep_sub = episode.add_subparsers(
        dest="episode_command", required=True, metavar="EPISODE_COMMAND"
    )
    refer = ep_sub.add_parser("refer", help="refer a client to a program, opening an episode")
    refer.add_argument("--client-ref", required=True)
    refer.add_argument("--program", required=True)
    refer.add_argument("--source", required=True, help="referral source, e.g. self, primary_care")
    show = ep_sub.add_parser("show", help="show an episode's current state")
    show.add_argument("episode_id")
    events = ep_sub.add_parser("events", help="list an episode's stored events")
    events.add_argument("episode_id")
    listing = ep_sub.add_parser("list", help="list episodes, filtered by search attributes")
    listing.add_argument("--stage")
    listing.add_argument("--program")
    listing.add_argument("--clinician")
    listing.add_argument("--min-escalation", type=int)
    listing.add_argument("--all", action="store_true", help="include closed episodes")
    audit_cli.add_parser(sub)
    for p in (refer, show, events, listing):
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.add_argument("--api-url", help="API base URL (CAREPATH_API_URL)")
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
    try:
        settings = Settings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        name = "CAREPATH_" + "_".join(str(p) for p in first["loc"]).upper()
        raise StartupError(f"setting {name} is invalid: {first['msg']}") from None

    if args.command == "episode":
        handler = {"refer": _refer, "show": _show, "events": _events, "list": _list}[
            args.episode_command
        ]
        handler(settings, args)
        return 0

    if args.command == "audit":
        return audit_cli.run(settings, args)

    configure_logging(settings.log_format, settings.log_level)
    if args.command == "up":
        from carepath.cli.up import run_up

        return asyncio.run(run_up(settings))
    if args.command == "worker":
        from carepath.cli.serve import run_worker

        return asyncio.run(run_worker(settings))
    if args.command == "api":
        from carepath.cli.serve import run_api

        return asyncio.run(run_api(settings))
    if args.command == "db" and args.db_command in db_commands.COMMANDS:
        return asyncio.run(db_commands.run_db(settings, args))
    if args.command == "db":
        from carepath.cli.serve import run_migrate

        return asyncio.run(run_migrate(settings))
    raise AssertionError(args.command)  # pragma: no cover - argparse rejects others


def _refer(settings: Settings, args: argparse.Namespace) -> None:
    episodes.refer(settings.api_url, args.client_ref, args.program, args.source, args.json)


def _show(settings: Settings, args: argparse.Namespace) -> None:
    episodes.show(settings.api_url, args.episode_id, args.json)


def _list(settings: Settings, args: argparse.Namespace) -> None:
    filters = {
        "stage": args.stage,
        "program_id": args.program,
        "primary_clinician": args.clinician,
        "min_escalation_level": args.min_escalation,
        "include_closed": args.all or None,
    }
    episodes.list_episodes(settings.api_url, filters, args.json)


def _events(settings: Settings, args: argparse.Namespace) -> None:
    episodes.events(settings.api_url, args.episode_id, args.json)


if __name__ == "__main__":
    sys.exit(main())
