"""asyncpg access to PostgreSQL: the tamper-evident event store, its read models,
checkpoints and verification, and the migrations."""

from carepath.store.chain import GENESIS_HASH, VerificationResult, canonical_json, verify_chain
from carepath.store.checkpoints import (
    Checkpoint,
    export_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    take_checkpoint,
)
from carepath.store.db import create_pool
from carepath.store.errors import (
    AppendConflict,
    CheckpointInvalid,
    DatabaseUnavailable,
    MigrationFailed,
    StoreError,
)
from carepath.store.event_store import EventStore
from carepath.store.migrations import migrate
from carepath.store.projections import rebuild_projections
from carepath.store.records import AppendResult, StoredEvent
from carepath.store.verification import StreamVerification, verify_all, verify_stream

__all__ = [
    "GENESIS_HASH",
    "AppendConflict",
    "AppendResult",
    "Checkpoint",
    "CheckpointInvalid",
    "DatabaseUnavailable",
    "EventStore",
    "MigrationFailed",
    "StoreError",
    "StoredEvent",
    "StreamVerification",
    "VerificationResult",
    "canonical_json",
    "create_pool",
    "export_checkpoint",
    "latest_checkpoint",
    "load_checkpoint",
    "migrate",
    "rebuild_projections",
    "take_checkpoint",
    "verify_all",
    "verify_chain",
    "verify_stream",
]
