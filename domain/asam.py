"""The ASAM Criteria's words per edition: the six dimensions and the levels of care.

An assessment records the edition it was made under (`AsamEdition`), and everything that
shows its ratings or a level of care names them in that edition: the episode view, the
command line, the FHIR export. Nothing here changes what is stored.

Dimensions are identified by their number, 1 to 6. `AsamRatings` stores the rating of
dimension N in its N-th field, whose name is the 3rd edition's name of dimension N (the
stored form predates the 4th edition and keeps its field names). The 4th edition reorders
the content of dimensions 4 to 6, so the number, not the stored field name, says what a
rating is about: under a 4th-edition assessment the field `readiness_to_change` holds the
rating of dimension 4, *substance use-related risks*, and is shown with that name.

Levels of care keep their stored values (`LevelOfCare`); each has a level number and a
name in each edition. Where an edition has no level of its own for a value, the nearest
one is given and the name says so (the 4th edition folds the withdrawal management
levels into the levels of care that provide them, and has no 3.3 or 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain.command_base import CommandBase
from domain.errors import InvalidCommand
from domain.state import EpisodeState
from domain.vocabulary import (
    ASAM_FOURTH_EDITION_FIELDS,
    CURRENT_RULES,
    AsamEdition,
    AsamRatings,
    LevelOfCare,
)

DISPLAY_EDITION = AsamEdition.FOURTH
"""The edition whose names are shown when no assessment names one (before assessment,
or for a client referred out at screening)."""

EDITION_NAMES: Mapping[AsamEdition, str] = {
    AsamEdition.THIRD: "The ASAM Criteria, 3rd edition (2013)",
    AsamEdition.FOURTH: "The ASAM Criteria, 4th edition (2023)",
}

STORED_FIELDS: tuple[str, ...] = tuple(AsamRatings.model_fields)
"""The `AsamRatings` field of each dimension, in dimension order (1 to 6)."""

FOURTH_EDITION_FIELDS: tuple[str, ...] = ASAM_FOURTH_EDITION_FIELDS
"""The input names the 4th edition's dimensions may be given under, in dimension order."""

DIMENSION_NAMES: Mapping[AsamEdition, tuple[str, ...]] = {
    AsamEdition.THIRD: (
        "Acute intoxication and/or withdrawal potential",
        "Biomedical conditions and complications",
        "Emotional, behavioral, or cognitive conditions and complications",
        "Readiness to change",
        "Relapse, continued use, or continued problem potential",
        "Recovery/living environment",
    ),
    AsamEdition.FOURTH: (
        "Intoxication, withdrawal, and addiction medications",
        "Biomedical conditions",
        "Psychiatric and cognitive conditions",
        "Substance use-related risks",
        "Recovery environment interactions",
        "Person-centered considerations",
    ),
}


@dataclass(frozen=True)
class Dimension:
    """One ASAM dimension as an edition names it, and the field that stores its rating."""

    number: int
    field: str
    name: str

    @property
    def label(self) -> str:
        return f"Dimension {self.number}: {self.name}"


@dataclass(frozen=True)
class RatedDimension:
    dimension: Dimension
    rating: int


def dimensions(edition: AsamEdition) -> tuple[Dimension, ...]:
    """The six dimensions in number order, named as `edition` names them."""
    names = DIMENSION_NAMES[edition]
    return tuple(
        Dimension(number=n, field=field, name=names[n - 1])
        for n, field in enumerate(STORED_FIELDS, start=1)
    )


def rated(edition: AsamEdition, ratings: AsamRatings) -> tuple[RatedDimension, ...]:
    """Each dimension of `edition` with the rating the assessment gave its number."""
    return tuple(
        RatedDimension(dimension=d, rating=getattr(ratings, d.field)) for d in dimensions(edition)
    )


@dataclass(frozen=True)
class LevelName:
    """A level of care in one edition: its level number (or WM level) and its name."""

    code: str
    name: str

    @property
    def display(self) -> str:
        return f"Level {self.code}: {self.name}"


def _both(code: str, name: str) -> tuple[LevelName, LevelName]:
    return LevelName(code, name), LevelName(code, name)


_LEVELS: Mapping[LevelOfCare, tuple[LevelName, LevelName]] = {
    # value: (3rd edition, 4th edition)
    LevelOfCare.EARLY_INTERVENTION: (
        LevelName("0.5", "Early intervention"),
        LevelName("0.5", "Early intervention (a 3rd-edition level, outside the 4th's continuum)"),
    ),
    LevelOfCare.REMISSION_MONITORING: (
        LevelName("1", "Outpatient services (4th-edition level 1.0, remission monitoring)"),
        LevelName("1.0", "Long-term remission monitoring"),
    ),
    LevelOfCare.OUTPATIENT: (
        LevelName("1", "Outpatient services"),
        LevelName("1.5", "Outpatient therapy"),
    ),
    LevelOfCare.MEDICALLY_MANAGED_OUTPATIENT: (
        LevelName("1", "Outpatient services (4th-edition level 1.7, medically managed)"),
        LevelName("1.7", "Medically managed outpatient"),
    ),
    LevelOfCare.IOP: (
        LevelName("2.1", "Intensive outpatient services"),
        LevelName("2.1", "Intensive outpatient"),
    ),
    LevelOfCare.PHP: (
        LevelName("2.5", "Partial hospitalization services"),
        LevelName("2.5", "High-intensity outpatient"),
    ),
    LevelOfCare.MEDICALLY_MANAGED_INTENSIVE_OUTPATIENT: (
        LevelName("2.5", "Partial hospitalization services (4th-edition level 2.7)"),
        LevelName("2.7", "Medically managed intensive outpatient"),
    ),
    LevelOfCare.RESIDENTIAL: _both("3", "Residential (level not named)"),
    LevelOfCare.LOW_INTENSITY_RESIDENTIAL: (
        LevelName("3.1", "Clinically managed low-intensity residential services"),
        LevelName("3.1", "Clinically managed low-intensity residential"),
    ),
    LevelOfCare.POPULATION_SPECIFIC_RESIDENTIAL: (
        LevelName("3.3", "Clinically managed population-specific high-intensity residential"),
        LevelName("3.5", "Clinically managed high-intensity residential (3rd-edition 3.3)"),
    ),
    LevelOfCare.HIGH_INTENSITY_RESIDENTIAL: (
        LevelName("3.5", "Clinically managed high-intensity residential services"),
        LevelName("3.5", "Clinically managed high-intensity residential"),
    ),
    LevelOfCare.MEDICALLY_MANAGED_RESIDENTIAL: (
        LevelName("3.7", "Medically monitored intensive inpatient services"),
        LevelName("3.7", "Medically managed residential"),
    ),
    LevelOfCare.INPATIENT: (
        LevelName("4", "Medically managed intensive inpatient services"),
        LevelName("4", "Medically managed inpatient"),
    ),
    LevelOfCare.WITHDRAWAL_MANAGEMENT: _both("WM", "Withdrawal management (level not named)"),
    LevelOfCare.WITHDRAWAL_MANAGEMENT_1: (
        LevelName("1-WM", "Ambulatory withdrawal management without extended on-site monitoring"),
        LevelName("1.7", "Medically managed outpatient, with withdrawal management (3rd: 1-WM)"),
    ),
    LevelOfCare.WITHDRAWAL_MANAGEMENT_2: (
        LevelName("2-WM", "Ambulatory withdrawal management with extended on-site monitoring"),
        LevelName(
            "2.7",
            "Medically managed intensive outpatient, with withdrawal management (3rd: 2-WM)",
        ),
    ),
    LevelOfCare.WITHDRAWAL_MANAGEMENT_3_2: (
        LevelName("3.2-WM", "Clinically managed residential withdrawal management"),
        LevelName(
            "3.5",
            "Clinically managed high-intensity residential, with withdrawal management "
            "(3rd: 3.2-WM)",
        ),
    ),
    LevelOfCare.WITHDRAWAL_MANAGEMENT_3_7: (
        LevelName("3.7-WM", "Medically monitored inpatient withdrawal management"),
        LevelName("3.7", "Medically managed residential, with withdrawal management (3rd: 3.7-WM)"),
    ),
    LevelOfCare.WITHDRAWAL_MANAGEMENT_4: (
        LevelName("4-WM", "Medically managed intensive inpatient withdrawal management"),
        LevelName("4", "Medically managed inpatient, with withdrawal management (3rd: 4-WM)"),
    ),
}

MERGED_LEVELS = frozenset({LevelOfCare.WITHDRAWAL_MANAGEMENT})
"""Values of earlier releases that lump distinct levels together: read in stored events,
refused in the commands of episodes under the current rules (name the level instead)."""

WITHDRAWAL_MANAGEMENT_LEVELS = (
    LevelOfCare.WITHDRAWAL_MANAGEMENT_1,
    LevelOfCare.WITHDRAWAL_MANAGEMENT_2,
    LevelOfCare.WITHDRAWAL_MANAGEMENT_3_2,
    LevelOfCare.WITHDRAWAL_MANAGEMENT_3_7,
    LevelOfCare.WITHDRAWAL_MANAGEMENT_4,
)


def level_name(level: LevelOfCare, edition: AsamEdition) -> LevelName:
    """`level`'s number and name in `edition`."""
    third, fourth = _LEVELS[level]
    return third if edition is AsamEdition.THIRD else fourth


def level_display(level: LevelOfCare, edition: AsamEdition) -> str:
    """How `level` is shown under `edition`, e.g. "Level 2.5: High-intensity outpatient"."""
    return level_name(level, edition).display


def fourth_edition_level(level: LevelOfCare) -> str:
    """The 4th edition's level number for `level` (the 3rd-to-4th mapping)."""
    return level_name(level, AsamEdition.FOURTH).code


def edition_of(state: EpisodeState | None) -> AsamEdition:
    """The edition an episode's levels and dimensions are named in: its assessment's."""
    if state is None or state.assessment is None:
        return DISPLAY_EDITION
    return state.assessment.asam_edition


def merged_levels_in(command: CommandBase) -> tuple[LevelOfCare, ...]:
    """The merged levels of earlier releases that `command` names in any field."""
    values = (getattr(command, name) for name in type(command).model_fields)
    return tuple(v for v in values if isinstance(v, LevelOfCare) and v in MERGED_LEVELS)


def refuse_merged_levels(
    state: EpisodeState | None, command: CommandBase, rules_revision: int
) -> None:
    """Refuse a merged level of care in a command of an episode under the current rules.

    Before admission the revision in force decides (the workflow passes the first one
    while it replays a history recorded before it); after admission the revision the
    episode was admitted under. Episodes under the first revision keep accepting them.
    """
    merged = merged_levels_in(command)
    if not merged or rules_revision < CURRENT_RULES:
        return
    if state is not None and state.admitted_at is not None and not state.rules.current:
        return
    choices = ", ".join(level.value for level in WITHDRAWAL_MANAGEMENT_LEVELS)
    raise InvalidCommand(
        f"{merged[0].value} does not say which level of care: name the withdrawal "
        f"management level ({choices})"
    )
