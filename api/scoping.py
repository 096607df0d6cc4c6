"""Program scoping: a user sees and acts on the episodes of their programs only.

An episode of another program answers exactly like an episode that does not exist (404
`EpisodeNotFound`, same detail), so nothing tells a caller that it exists; the access log
records the attempt as denied.
"""

from __future__ import annotations

from fastapi import Request

from api.auth import User
from store.worklists import Worklists
from workflows.client import EpisodeNotFound


def not_found(episode_id: str) -> EpisodeNotFound:
    return EpisodeNotFound(
        f"no episode {episode_id!r} in your programs: check the id (it is returned on referral)"
    )


class EpisodeGate:
    """Finds an episode's program and lets through only users who work in it."""

    def __init__(self, worklists: Worklists) -> None:
        self._worklists = worklists

    async def check(self, request: Request, user: User, episode_id: str) -> str:
        """The episode's program; raises `EpisodeNotFound` if it is absent or not the user's."""
        program = await self._worklists.episode_program(episode_id)
        if program is None:
            raise not_found(episode_id)
        if not user.may_access(program):
            request.state.access_outcome = "denied"
            raise not_found(episode_id)
        return program
