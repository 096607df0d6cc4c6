"""Errors of the audit commands, under the one `CarePathError` root."""

from __future__ import annotations

from domain.errors import CarePathError


class AuditError(CarePathError):
    """Root of every refusal an audit command makes on purpose."""


class EpisodeNotInStore(AuditError):
    """Raised when the event store holds no stream for the episode id."""

    def __init__(self, episode_id: str) -> None:
        super().__init__(
            f"the event store holds no events for episode {episode_id!r}: check the id "
            "(it is returned on referral) and that you are pointed at the right database"
        )
        self.episode_id = episode_id


class InvalidAsOf(AuditError):
    """Raised when an as-of time has no UTC offset, so the moment it names is ambiguous."""


class UnknownExportFormat(AuditError):
    """Raised when an export is asked for in a format other than jsonl, csv or fhir."""
