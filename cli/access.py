"""`carepath audit access-log`: who accessed episode data.

Reads the access log through the API (`GET /audit/access-log`) with an auditor's token,
so reading it is itself recorded. `--format fhir` prints a FHIR R4B Bundle of AuditEvents.
"""

from __future__ import annotations

import argparse
import json

from cli.episodes import ApiClient, print_table


def run(api: ApiClient, args: argparse.Namespace) -> int:
    fmt = args.log_format or ("json" if args.json else "table")
    params = {
        "format": "fhir" if fmt == "fhir" else "json",
        "episode_id": args.episode,
        "user_id": args.user,
        "since": args.since,
        "until": args.until,
        "limit": args.limit,
    }
    result = api.request(
        "GET", "/audit/access-log", params={k: v for k, v in params.items() if v is not None}
    )
    if fmt == "table" and not args.output:
        columns = ("at", "user_id", "role", "action", "outcome", "status", "episode_id", "resource")
        rows = [
            tuple("" if e.get(c) is None else str(e[c]) for c in columns) for e in result["entries"]
        ]
        print_table(tuple(c.replace("_", " ").upper() for c in columns), rows)
        return 0
    text = json.dumps(result, indent=2)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write(text + "\n")
    else:
        print(text)
    return 0
