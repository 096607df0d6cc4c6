"""`carepath`: run the engine, talk to its API, audit episodes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carepath", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="start Temporal, PostgreSQL, the worker and the API; Ctrl-C stops")
    up.add_argument("--data-dir", help="where embedded servers keep data (CAREPATH_DATA_DIR)")
    sub.add_parser("worker", help="run the Temporal worker against configured servers")
    sub.add_parser("api", help="run the HTTP API against configured servers")

    db = sub.add_parser("db", help="database administration")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_sub.add_parser("migrate", help="apply pending schema migrations")

    episode = sub.add_parser("episode", help="refer clients and look at episodes (via the API)")
    ep_sub = episode.add_subparsers(dest="episode_command", required=True, metavar="EPISODE_COMMAND")
    refer = ep_sub.add_parser("refer", help="refer a client to a program, opening an episode")
    refer.add_argument("--client-ref", required=True)
    refer.add_argument("--program", required=True)
    refer.add_argument("--source", required=True, help="referral source, e.g. self, primary_care")
    show = ep_sub.add_parser("show", help="show an episode's current state")
    show.add_argument("episode_id")
    events = ep_sub.add_parser("events", help="list an episode's stored events")
    events.add_argument("episode_id")
    for p in (refer, show, events):
        p.add_argument("--json", action="store_true", help="print JSON for scripts")
        p.add_argument("--api-url", help="API base URL (CAREPATH_API_URL)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise SystemExit(f"carepath {args.command}: not wired yet")


if __name__ == "__main__":
    sys.exit(main())
