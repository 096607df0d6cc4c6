"""`carepath audit ...`: replay, verify, determinism and export, for auditors
(declared in cli.commands.audit).

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


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Run one audit subcommand; returns the exit status."""
    from cli.audit_commands import run_command

    return run_command(settings, args)
