"""Errors of the event store and its database, under the one `CarePathError` root.

The store raises these at its boundary instead of asyncpg's own exceptions, so callers
(activities, the API, the CLI) can tell a retryable outage from a refusal that no retry fixes.
"""

from __future__ import annotations

from domain.errors import CarePathError


class StoreError(CarePathError):
    """Root of every error the store raises on purpose."""


class DatabaseUnavailable(StoreError):
    """Raised when PostgreSQL cannot be reached or refuses the connection; retrying may help."""


class AppendConflict(StoreError):
    """Raised when an append puts different content at a taken seq, or would leave a gap.

    Not retryable: the stream already holds other events at those positions, so the
    caller must re-read the stream and decide again.
    """


class StoreRefused(StoreError):
    """Raised when PostgreSQL refuses an append for a reason that retrying cannot fix: a
    constraint or trigger, data it cannot store, a missing table or privilege, or a failing
    read-model update. Nothing of the append was written; the message names the cause.
    """


class MigrationFailed(StoreError):
    """Raised when a schema migration fails (its transaction is rolled back) or was edited
    after it was applied (its checksum no longer matches the one recorded)."""


class CheckpointInvalid(StoreError):
    """Raised when a checkpoint's signature does not verify under the checkpoint key, or a
    checkpoint file is not one CarePath wrote: it was altered, or signed with another key."""


class SchemaNotCurrent(StoreError):
    """Raised when a table the command needs does not exist yet: run `carepath db migrate`."""


class UnknownPosition(StoreError):
    """Raised when a reader waits for a position (`min_position`) that no stored event has."""


class ProjectionBehind(StoreError):
    """Raised when the read models do not reach a position in time; retrying shortly helps."""


class RebuildRunning(StoreError):
    """Raised when a rebuild of the read models starts while another one runs."""
