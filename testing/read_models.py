"""The read models as tests compare them: every row, with each stored state snapshot
folded on to its stream's head.

A running projector writes an episode's snapshot only now and then (store/projections.py,
`SNAPSHOT_EVERY`), so two projectors that folded the same events may have stored
snapshots at different versions, both correct places to fold from. Folding each snapshot
on with the events after it makes them comparable, and a snapshot that is wrong (not
merely behind) still shows as a difference. A parked stream's snapshot (one of its
events does not fold: `projection_failures`) is left as stored.
"""

from __future__ import annotations

from typing import Any

from domain.decider import evolve
from domain.events import load_event
from domain.state import EpisodeState
from store.db import Connection
from store.projections import dump_read_models


async def read_models_at_head(conn: Connection) -> dict[str, list[dict[str, Any]]]:
    """`dump_read_models`, each `projection_snapshots` row folded on to its stream's head."""
    models = await dump_read_models(conn)
    parked = {row["episode_id"] for row in models["projection_failures"]}
    models["projection_snapshots"] = [
        row if row["episode_id"] in parked else await _at_head(conn, row)
        for row in models["projection_snapshots"]
    ]
    return models


async def _at_head(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    later = await conn.fetch(
        "SELECT payload FROM events WHERE episode_id = $1 AND seq > $2 ORDER BY seq",
        row["episode_id"],
        row["version"],
    )
    if not later:
        return row
    state: EpisodeState | None = EpisodeState.model_validate(row["state"])
    for event in later:
        state = evolve(state, load_event(event["payload"]))
    assert state is not None
    return {**row, "version": state.version, "state": state.model_dump(mode="json")}
