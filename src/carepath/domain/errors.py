"""The one error hierarchy of CarePath's domain.

Every error's message tells the user what to do next. The class name is the stable
error type that crosses process boundaries (Temporal failures, HTTP problem documents).
"""

from __future__ import annotations


class CarePathError(Exception):
    """Root of every refusal CarePath makes on purpose."""

    @property
    def code(self) -> str:
        """The stable name of this error, used as the problem type and Temporal failure type."""
        return type(self).__name__

    @property
    def message(self) -> str:
        return str(self)


class InvalidCommand(CarePathError):
    """Raised when a command's content is malformed or inconsistent with itself."""


class UnknownProgram(CarePathError):
    """Raised when a command names a program id that no loaded program definition has."""

    def __init__(self, program_id: str, known: tuple[str, ...] = ()) -> None:
        known_text = ", ".join(known) if known else "none loaded"
        super().__init__(
            f"unknown program {program_id!r}: choose one of the configured programs ({known_text})"
        )
        self.program_id = program_id


class ProgramDefinitionInvalid(CarePathError):
    """Raised when a program definition file fails validation; names the field and reason."""


class CommandNotAllowed(CarePathError):
    """Raised when the actor's role may not issue the command."""


class EpisodeNotStarted(CarePathError):
    """Raised when a command other than a referral arrives before the episode exists."""


class EpisodeAlreadyStarted(CarePathError):
    """Raised when a referral arrives for an episode that already exists."""


class EpisodeClosed(CarePathError):
    """Raised when any command arrives after the episode reached a terminal stage."""
