"""The access records of `carepath audit ...`: the command line reads episodes too.

The audit commands read PostgreSQL (and Temporal's histories) directly, not through the
API, so the API's access log would not see them. Each writes its own rows, one per
episode it read: who (CAREPATH_OPERATOR_ID, else the operating-system user, with role
`operator`), what (`read`, or `export` for an export; the command as `resource`, method
`CLI`), which episode, and the outcome. As in the API, what was read is printed only
once its access is recorded: if the rows cannot be written the command fails and
prints nothing. A refusal (no such episode) is recorded too, before its error.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from audit.errors import AuditError, EpisodeNotInStore
from store.access_log import AccessAction, AccessLog, AccessOutcome, AccessRecord
from store.db import Pool
from store.errors import DatabaseUnavailable
from workers.settings import Settings

OPERATOR_ROLE = "operator"
CLI_METHOD = "CLI"


def operator_id(settings: Settings) -> str:
    """Who runs the command: CAREPATH_OPERATOR_ID, else the operating-system user."""
    if settings.operator_id:
        return settings.operator_id
    try:
        return getpass.getuser() or "(unknown)"
    except (KeyError, OSError):  # no user name for this uid
        return "(unknown)"


@dataclass
class CliAccess:
    """The episodes a command read; by default the one it was given."""

    episodes: list[str | None] = field(default_factory=list)

    def read(self, episode_ids: Iterable[str]) -> None:
        self.episodes = list(dict.fromkeys(episode_ids)) or [None]


def _command_line(args: argparse.Namespace) -> str:
    """The command as the access log shows it: subcommand, target, format; no file names."""
    parts = ["carepath", "audit", args.audit_command]
    episode = getattr(args, "episode_id", None)
    parts.append(episode if episode else "--all")
    if getattr(args, "export_format", None):
        parts += ["--format", args.export_format]
    if getattr(args, "as_of", None):
        parts += ["--as-of", args.as_of]
    return " ".join(parts)[:500]


@asynccontextmanager
async def audited(
    pool: Pool, settings: Settings, args: argparse.Namespace, action: AccessAction
) -> AsyncIterator[CliAccess]:
    """Record the block's access when it ends: success, or the refusal it raised."""
    access = CliAccess([getattr(args, "episode_id", None)])
    try:
        yield access
    except AuditError as err:
        missing = isinstance(err, EpisodeNotInStore)
        outcome: AccessOutcome = "not_found" if missing else "invalid"
        try:
            await _write(pool, settings, args, action, access, outcome, 404 if missing else 422)
        except DatabaseUnavailable as unrecorded:
            print(f"carepath: warning: {unrecorded}", file=sys.stderr)
        raise
    try:
        await _write(pool, settings, args, action, access, "success", 200)
    except DatabaseUnavailable as err:
        raise DatabaseUnavailable(
            f"{err.message}; nothing is printed while the access cannot be recorded"
        ) from None


async def _write(
    pool: Pool,
    settings: Settings,
    args: argparse.Namespace,
    action: AccessAction,
    access: CliAccess,
    outcome: AccessOutcome,
    status: int,
) -> None:
    who = operator_id(settings)
    resource = f"carepath audit {args.audit_command}"
    path = _command_line(args)
    await AccessLog(pool).record_many(
        [
            AccessRecord(
                user_id=who[:200],
                role=OPERATOR_ROLE,
                action=action,
                resource=resource,
                outcome=outcome,
                status=status,
                method=CLI_METHOD,
                path=path,
                episode_id=episode,
            )
            for episode in access.episodes
        ]
    )
