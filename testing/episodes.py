"""Episodes driven through `EpisodeClient` to a known point, for tests and benchmarks."""

from __future__ import annotations

import uuid
from datetime import datetime

from domain.programs import ProgramDefinition
from programs import load_catalog
from testing import samples
from workflows.client import EpisodeClient


async def admitted(
    episodes: EpisodeClient,
    ids: samples.CommandIds,
    *,
    episode_id: str | None = None,
    program: ProgramDefinition | None = None,
    client_ref: str | None = None,
) -> tuple[str, datetime]:
    """A new episode referred, screened, assessed, admitted and with a treatment plan
    (`samples.admission`); its id and the time it was referred."""
    episode_id = episode_id or str(uuid.uuid4())
    program = program or load_catalog().get("adult-iop")
    referral = samples.referral(ids, client_ref or "MRN-000001", program.id)
    referred = await episodes.refer(episode_id, referral, program)
    for command in samples.admission(ids):
        await episodes.send(episode_id, command)
    assert referred.state is not None
    return episode_id, referred.state.referred_at
