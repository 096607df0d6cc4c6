"""The state of one episode of care: the fold of its events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from carepath.domain.commands import ReferralSource


class Stage(StrEnum):
    REFERRED = "referred"
    SCREENING = "screening"
    ASSESSMENT = "assessment"
    TREATMENT_PLANNING = "treatment_planning"
    IN_PROGRAM = "in_program"
    ON_HOLD = "on_hold"
    AFTERCARE = "aftercare"
    REFERRED_OUT = "referred_out"
    DISCHARGED = "discharged"


TERMINAL_STAGES = frozenset({Stage.REFERRED_OUT, Stage.DISCHARGED})


class EpisodeState(BaseModel):
    """Everything the decider needs to judge the next command; rebuilt by folding events."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str
    version: int = 0
    stage: Stage = Stage.REFERRED
    program_id: str
    client_ref: str
    referral_source: ReferralSource
    referred_at: datetime

    @property
    def is_closed(self) -> bool:
        return self.stage in TERMINAL_STAGES
