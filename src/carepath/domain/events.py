"""Events: what happened to an episode, in the past tense.

Events are frozen, carry a `type` tag and a `schema_version`, and live in one
discriminated union read through one module-level `TypeAdapter`. A tag is never
renamed; a field is added with a default, or an upcaster lifts old payloads.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from carepath.domain.actors import Actor
from carepath.domain.commands import ReferralSource


class EventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str
    seq: int = Field(ge=1, description="Position in the episode's stream, contiguous from 1.")
    occurred_at: datetime
    actor: Actor
    command_id: str
    schema_version: int = 1


class ClientReferred(EventBase):
    type: Literal["client_referred"] = "client_referred"
    client_ref: str
    program_id: str
    referral_source: ReferralSource


Event = Annotated[ClientReferred, Field(discriminator="type")]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

# Upcasters lift a stored payload of an older schema version to the current one.
# Keyed by (type, from_version); each returns the payload at from_version + 1.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def current_schema_version(event_type: str) -> int:
    """The schema version new events of this type are written with."""
    version = 1
    while (event_type, version) in UPCASTERS:
        version += 1
    return version


def load_event(payload: Mapping[str, Any]) -> Event:
    """Validate a stored event payload, upcasting it first if it predates the current schema."""
    data = dict(payload)
    event_type = str(data.get("type", ""))
    version = int(data.get("schema_version", 1))
    while (event_type, version) in UPCASTERS:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
        data["schema_version"] = version
    return EVENT_ADAPTER.validate_python(data)


def dump_event(event: Event) -> dict[str, Any]:
    """The JSON-compatible form of an event, as stored and sent over the wire."""
    return EVENT_ADAPTER.dump_python(event, mode="json")
