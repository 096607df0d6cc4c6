"""The chain seal: where the plain hash rule ended in each stream, MAC'd with the chain key.

Migration 0014 marks every event stored before it `hash_alg = 'sha256'` (plain SHA-256)
and every later one is keyed. A plain hash needs no secret, so a plain-hash event is only
believed at or before the seq the seal records for its stream. The seal is written once,
by the first process that starts with the chain key after the migration
(`seal_legacy_chains`, called by `cli.runtime.open_runtime`), and only while no keyed
event exists yet: a seal missing once keyed events exist is never written afresh (it was
deleted), and then every plain-hash event is reported.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import structlog

from store.chain import HASH_KEYED, HASH_PLAIN, ChainSeal, canonical_json, chain_key_id
from store.db import Connection, Pool

log = structlog.get_logger("carepath.chain_seal")

FORMAT = "carepath-chain-seal/1"
# Held while the seal is written, so concurrently starting processes write one.
SEAL_LOCK_KEY = 0x63686169_6E73656C  # "chainsel"
_PLAIN_HEADS = (
    "SELECT DISTINCT ON (episode_id) episode_id, seq, hash FROM events "
    f"WHERE hash_alg = '{HASH_PLAIN}' ORDER BY episode_id, seq DESC"
)


def _document(heads: dict[str, Any]) -> dict[str, Any]:
    return {"format": FORMAT, "heads": heads}


def _mac(key: bytes, heads: dict[str, Any]) -> str:
    return hmac.new(key, canonical_json(_document(heads)), hashlib.sha256).hexdigest()


async def seal_legacy_chains(pool: Pool, key: bytes) -> bool:
    """Write the seal if none is stored and no keyed event exists yet; True if it wrote one."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SEAL_LOCK_KEY)
        if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM chain_seals)"):
            return False
        if await conn.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM events WHERE hash_alg = '{HASH_KEYED}')"
        ):
            log.error(
                "chain_seal_missing",
                detail="keyed events exist but no chain seal: it was deleted; every "
                "plain-hash event will fail verification",
            )
            return False
        rows = await conn.fetch(_PLAIN_HEADS)
        heads = {row["episode_id"]: {"seq": row["seq"], "hash": row["hash"]} for row in rows}
        await conn.execute(
            "INSERT INTO chain_seals (heads, key_id, mac) VALUES ($1, $2, $3)",
            heads,
            chain_key_id(key),
            _mac(key, heads),
        )
    log.info("chain_sealed", streams=len(heads))
    return True


async def load_seal(conn: Connection, key: bytes) -> ChainSeal | None:
    """The stored seal, its MAC checked under `key` (invalid: `valid=False`); None if none."""
    row = await conn.fetchrow("SELECT heads, key_id, mac FROM chain_seals LIMIT 1")
    if row is None:
        return None
    heads: dict[str, Any] = row["heads"]
    if row["key_id"] != chain_key_id(key):
        return ChainSeal(
            valid=False,
            problem=f"the chain seal was MAC'd with another chain key (key id {row['key_id']})",
        )
    if not hmac.compare_digest(_mac(key, heads), str(row["mac"])):
        return ChainSeal(valid=False, problem="the chain seal does not match its MAC (altered)")
    return ChainSeal({ep: (int(h["seq"]), str(h["hash"])) for ep, h in heads.items()})
