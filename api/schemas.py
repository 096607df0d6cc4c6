"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from domain.commands import ReferralSource
from domain.state import EpisodeState
from workflows.client import EpisodeSummary


class ReferralRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "client_ref": "MRN-004211",
                    "program_id": "adult-iop",
                    "referral_source": "primary_care",
                }
            ]
        },
    )

    client_ref: str = Field(
        min_length=1,
        max_length=100,
        description="Opaque reference to the client in the provider's records; never a name.",
    )
    program_id: str = Field(min_length=1, max_length=100)
    referral_source: ReferralSource
    reason: str | None = Field(default=None, max_length=2000)


class EpisodeResponse(BaseModel):
    episode_id: str
    workflow_id: str
    state: EpisodeState | None


class EpisodeListResponse(BaseModel):
    episodes: list[EpisodeSummary]


class StoredEventResponse(BaseModel):
    seq: int
    type: str
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime
    actor_id: str
    actor_role: str
    command_id: str
    hash: str
    payload: dict[str, Any]


class EventsResponse(BaseModel):
    episode_id: str
    events: list[StoredEventResponse]


class ComponentHealth(BaseModel):
    ok: bool
    detail: str


class HealthResponse(BaseModel):
    status: Literal["ok", "unavailable"]
    temporal: ComponentHealth
    postgres: ComponentHealth
