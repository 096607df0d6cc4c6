"""asyncpg access to PostgreSQL: the tamper-evident event store, its read models,
checkpoints and verification, and the migrations."""

from store.chain import GENESIS_HASH, VerificationResult, canonical_json, verify_chain
from store.checkpoints import (
    Checkpoint,
    export_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    take_checkpoint,
)
from store.db import create_pool
from store.errors import (
    AppendConflict,
    CheckpointInvalid,
    DatabaseUnavailable,
    MigrationFailed,
    StoreError,
)
from store.event_store import EventStore
from store.migrations import migrate
from store.projections import rebuild_projections
from store.records import AppendResult, StoredEvent
from store.verification import StreamVerification, verify_all, verify_stream

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
