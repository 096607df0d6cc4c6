"""Event classes about the program an episode runs under. Import them from `domain.events`."""

from __future__ import annotations

from typing import Any, Literal

from domain.event_types import EventBase
from domain.vocabulary import DeadlineRules


class ProgramMigrated(EventBase):
    """A supervisor moved the episode to another version of its program.

    `definition` is the new version's definition as its digest is computed over
    (`domain.programs.program_document`): the record shows the exact rules the episode
    follows from here, and an auditor can check `to_digest` against it. `rules` are the
    timing rules recomputed from it, for an episode already admitted (None before)."""

    type: Literal["program_migrated"] = "program_migrated"
    program_id: str
    from_version: int | None
    to_version: int
    from_digest: str | None
    to_digest: str
    definition: dict[str, Any]
    rules: DeadlineRules | None = None
