"""What makes two requests the same request: the fingerprint kept with a command id.

A command id (the HTTP `Idempotency-Key`) promises that a retried request is applied
once and answered with the first answer. That promise only holds for the *same* request:
a key sent again with another body is a client bug (or a key generator that repeats),
and answering it with the first result would silently drop the second record. So each
applied command id is stored with the fingerprint of its request, and a request that
reuses the id with a different fingerprint is refused with `IdempotencyKeyReused`
(as the IETF Idempotency-Key draft asks: 422).

The fingerprint is computed here, in one place, by every party that compares one: the
client facade (it names the Temporal update), the workflow and the event store.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from domain.command_base import CommandBase
from domain.errors import CarePathError


class IdempotencyKeyReused(CarePathError):
    """Raised when a command id that was already used for one request arrives with a
    different request; nothing is written. Send the new request under a new key."""


def command_fingerprint(command: CommandBase) -> str:
    """SHA-256 (hex) of the canonical JSON of the request, less its command id.

    Fields left at their defaults are omitted, so a field added later (with a default)
    leaves the fingerprints of earlier requests as they were; the `type` tag is always
    kept, so two commands of different kinds never share a fingerprint.
    """
    body: dict[str, Any] = command.model_dump(
        mode="json", exclude={"command_id"}, exclude_defaults=True
    )
    body["type"] = command.type
    # The events' canonical JSON (keys sorted, no whitespace, UTF-8), but total: the
    # workflow fingerprints a request before the decider judges it, so a NaN or a lone
    # surrogate, which the decider will refuse, must still have a fingerprint.
    encoded = json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
    ).encode("utf-8", "surrogatepass")
    return hashlib.sha256(encoded).hexdigest()


def reused_key(command_id: str) -> IdempotencyKeyReused:
    """The refusal of a request that reuses `command_id` with a different body."""
    return IdempotencyKeyReused(
        f"the Idempotency-Key {command_id!r} was already used for a different request to "
        "this episode: nothing was recorded; send the new request under a new key"
    )
