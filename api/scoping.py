"""Program scoping: a user sees and acts on the episodes of their programs only.

An episode of another program answers exactly like an episode that does not exist (404
`EpisodeNotFound`, same detail), so nothing tells a caller that it exists; the access log
records the attempt as denied.

Where it is enforced:
- a command: by the episode's workflow, whose update validator refuses it when the
  caller's programs (sent with the command) exclude the episode's program, before
  anything is written (`EpisodeOutsidePrograms`);
- a read of one episode: here, by `EpisodeGate`, from the episode's first stored event
  (`store.episode_programs`), never from a read model that may lag behind;
- a referral: by the API, against the program the referral names.
"""

from __future__ import annotations

from fastapi import Request

from api.auth import User
from store.db import Pool
from store.episode_programs import episode_program
from workflows.client import EpisodeNotFound
from workflows.messages import outside_programs_message


def not_found(episode_id: str) -> EpisodeNotFound:
    return EpisodeNotFound(outside_programs_message(episode_id))


def denied(request: Request, episode_id: str) -> EpisodeNotFound:
    """The answer to a caller outside the episode's program, recorded as denied."""
    request.state.access_outcome = "denied"
    return not_found(episode_id)


class EpisodeGate:
    """Finds an episode's program and lets through only users who work in it."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def check(self, request: Request, user: User, episode_id: str) -> str:
        """The episode's program; raises `EpisodeNotFound` if it is absent or not the user's."""
        program = await episode_program(self._pool, episode_id)
        if program is None:
            raise not_found(episode_id)
        if not user.may_access(program):
            raise denied(request, episode_id)
        return program
