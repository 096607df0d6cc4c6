"""`carepath audit ...`: replay, verify, determinism and export, for auditors.

These talk to PostgreSQL and Temporal directly (CAREPATH_DATABASE_URL, or the embedded
server of `carepath up` in CAREPATH_DATA_DIR; CAREPATH_TEMPORAL_ADDRESS), not through the
API: an audit must work when the API is down or suspect, and the determinism check
replays histories against the workflow code installed here, which the API cannot do.
They only read: nothing is migrated, started or written but for each command's own
access-log rows (who, what, which episodes; cli.audit_access), written before anything
read is printed. Who is CAREPATH_OPERATOR_ID, else the operating-system user.

Exit status: 0 when everything checked out, 1 on any anomaly (a broken chain, a state
that differs from the live workflow, a history that would no longer replay) or error.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workers.settings import Settings

# The export formats (audit.export.ExportFormat), repeated here so that building
# the parser does not import the audit machinery (Temporal, asyncpg) for every command.
EXPORT_FORMATS = ("jsonl", "csv", "fhir")


def configure(audit: argparse.ArgumentParser) -> None:
    """Declare the subcommands of `audit` (cli.main registers the command itself)."""
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="AUDIT_COMMAND")

    replay = commands.add_parser(
        "replay", help="verify an episode's chain and show its timeline and state as of a moment"
    )
    replay.add_argument("episode_id")
    replay.add_argument(
        "--as-of",
        help="ISO 8601 time with an offset, e.g. 2025-03-01T14:30:00Z: the events that "
        "occurred at or before it; without it, the state is compared with the live workflow",
    )

    verify = commands.add_parser(
        "verify", help="recompute hash chains, compare with a checkpoint; exit 1 on any anomaly"
    )
    _one_or_all(verify)
    verify.add_argument(
        "--checkpoint",
        "--checkpoint-file",
        dest="checkpoint",
        help="a checkpoint file kept outside the database to compare with (default: the "
        "newest stored or published one); its signature is checked under "
        "CAREPATH_CHECKPOINT_KEY, and the stored checkpoint of its number must match it",
    )

    determinism = commands.add_parser(
        "determinism", help="replay live workflow histories with this code; exit 1 if any breaks"
    )
    _one_or_all(determinism)
    determinism.add_argument(
        "--include-closed", action="store_true", help="with --all: closed runs as well"
    )

    export = commands.add_parser("export", help="export an episode's record")
    export.add_argument("episode_id")
    export.add_argument("--format", required=True, choices=EXPORT_FORMATS, dest="export_format")
    export.add_argument("--output", help="write to this file instead of stdout")

    for parser in (replay, verify, determinism, export):
        parser.add_argument("--json", action="store_true", help="print JSON for scripts")
        parser.add_argument("--data-dir", help="embedded servers' data dir (CAREPATH_DATA_DIR)")


def _one_or_all(parser: argparse.ArgumentParser) -> None:
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("episode_id", nargs="?", help="one episode")
    target.add_argument("--all", action="store_true", help="every episode")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one audit subcommand; returns the exit status."""
    from cli.audit_commands import run_command

    return run_command(settings, args)
