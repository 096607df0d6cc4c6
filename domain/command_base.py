"""The base every command shares: actor, command id (the idempotency key) and reason.

It also fixes what every command class declares besides its fields: its `type` tag and
its `endpoint`, the HTTP path staff post it to and an example request. The path and
the example live on the command, next to the fields they name, so that a command is
declared in one class and judged by one registered rule (`domain.rules`), and the API
derives its endpoints from both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict

from domain.actors import Actor
from domain.vocabulary import LongText, Ref
from domain.vocabulary import ReferralSource as ReferralSource  # its home; re-exported


@dataclass(frozen=True)
class Endpoint:
    """Where staff send a command over HTTP, and an example of the request.

    `path` is under `/episodes/{episode_id}`; a `{name}` segment carries the command's
    field of that name (`/sessions/{session_id}/cancel`). `example` holds the fields
    the caller supplies, path fields included: the API documents it as the request body
    (less the path fields) and a unit test builds the command from it.
    """

    path: str
    example: dict[str, Any]


class CommandBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Every command class sets this, to None when staff do not post it under an episode
    # (the referral opens the episode; the tick is the workflow's own timer).
    endpoint: ClassVar[Endpoint | None]
    # Fields the server fills in rather than the caller (the program definition a
    # migration moves to, looked up in the server's catalog): not part of the request body.
    server_fields: ClassVar[frozenset[str]] = frozenset()

    if TYPE_CHECKING:
        # Each command narrows this to its own literal tag, the union's discriminator.
        type: str

    command_id: Ref
    actor: Actor
    reason: LongText | None = None
