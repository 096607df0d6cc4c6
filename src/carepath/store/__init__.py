"""asyncpg access to PostgreSQL: the tamper-evident event store and its migrations."""

from carepath.store.chain import GENESIS_HASH, VerificationResult, canonical_json, verify_chain
from carepath.store.db import create_pool
from carepath.store.errors import AppendConflict, DatabaseUnavailable, MigrationFailed, StoreError
from carepath.store.event_store import EventStore
from carepath.store.migrations import migrate
from carepath.store.records import AppendResult, StoredEvent

__all__ = [
    "GENESIS_HASH",
    "AppendConflict",
    "AppendResult",
    "DatabaseUnavailable",
    "EventStore",
    "MigrationFailed",
    "StoreError",
    "StoredEvent",
    "VerificationResult",
    "canonical_json",
    "create_pool",
    "migrate",
    "verify_chain",
]
