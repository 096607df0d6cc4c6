"""The ASAM Criteria's words per edition (domain/asam.py) and the levels of care the
decider accepts: dimension names, the level tables, the 3rd-to-4th mapping, the distinct
withdrawal management levels and the merged value of earlier releases."""

from __future__ import annotations

from datetime import datetime

import pytest
from domain_scenario import CLINICIAN, INTAKE, Episode
from pydantic import ValidationError

from domain import asam
from domain import commands as c
from domain.decider import DecisionContext
from domain.errors import InvalidCommand
from domain.events import dump_event
from domain.vocabulary import FIRST_RULES, AsamEdition, AsamRatings, LevelOfCare

FOURTH_NAMED = {
    "intoxication_withdrawal_addiction_medications": 1,
    "biomedical_conditions": 0,
    "psychiatric_cognitive_conditions": 2,
    "substance_use_related_risks": 3,
    "recovery_environment_interactions": 4,
    "person_centered_considerations": 1,
}
THIRD_NAMED = dict(zip(asam.STORED_FIELDS, FOURTH_NAMED.values(), strict=True))


class FirstRulesEpisode(Episode):
    """An episode decided as a replay of a history from before the current rules is."""

    def ctx(self, now: datetime | None = None) -> DecisionContext:
        return DecisionContext(
            episode_id=self.episode_id,
            now=now or self.now,
            programs=self.catalog,
            rules_revision=FIRST_RULES,
        )


def assess(ep: Episode, edition: AsamEdition, ratings: object, level: LevelOfCare) -> Episode:
    ep.screened()
    ep.run(
        c.RecordAssessment.model_validate(
            {
                "command_id": ep.cmd_id(),
                "actor": CLINICIAN.model_dump(),
                "asam_edition": edition.value,
                "asam_ratings": ratings,
                "diagnoses": ["F10.20"],
                "recommended_level": level.value,
            }
        )
    )
    return ep


class TestDimensionNames:
    def test_given_the_third_edition_when_its_dimensions_are_named_then_they_are_its_six_names(
        self,
    ) -> None:
        names = [d.name for d in asam.dimensions(AsamEdition.THIRD)]

        assert names == [
            "Acute intoxication and/or withdrawal potential",
            "Biomedical conditions and complications",
            "Emotional, behavioral, or cognitive conditions and complications",
            "Readiness to change",
            "Relapse, continued use, or continued problem potential",
            "Recovery/living environment",
        ]

    def test_given_the_fourth_edition_when_its_dimensions_are_named_then_they_are_its_six_names(
        self,
    ) -> None:
        names = [d.label for d in asam.dimensions(AsamEdition.FOURTH)]

        assert names == [
            "Dimension 1: Intoxication, withdrawal, and addiction medications",
            "Dimension 2: Biomedical conditions",
            "Dimension 3: Psychiatric and cognitive conditions",
            "Dimension 4: Substance use-related risks",
            "Dimension 5: Recovery environment interactions",
            "Dimension 6: Person-centered considerations",
        ]

    def test_given_a_rating_stored_as_readiness_to_change_when_shown_then_it_is_dimension_4_of_the_edition(
        self,
    ) -> None:
        ratings = AsamRatings.model_validate(THIRD_NAMED)

        third = asam.rated(AsamEdition.THIRD, ratings)[3]
        fourth = asam.rated(AsamEdition.FOURTH, ratings)[3]

        assert (third.dimension.number, third.dimension.name, third.rating) == (
            4,
            "Readiness to change",
            3,
        )
        assert (fourth.dimension.number, fourth.dimension.name, fourth.rating) == (
            4,
            "Substance use-related risks",
            3,
        )
        assert third.dimension.field == fourth.dimension.field == "readiness_to_change"

    def test_given_fourth_edition_names_when_ratings_are_read_then_each_lands_on_its_dimension_number(
        self,
    ) -> None:
        ratings = AsamRatings.model_validate(FOURTH_NAMED)

        assert ratings == AsamRatings.model_validate(THIRD_NAMED)
        assert ratings.model_dump() == THIRD_NAMED

    def test_given_both_names_of_one_dimension_when_ratings_are_read_then_they_are_refused(
        self,
    ) -> None:
        with pytest.raises(ValidationError, match="intoxication_withdrawal_addiction_medications"):
            AsamRatings.model_validate(
                {**THIRD_NAMED, "intoxication_withdrawal_addiction_medications": 2}
            )

    def test_given_a_fourth_edition_assessment_in_its_own_names_when_recorded_then_the_event_stores_the_dimension_numbers(
        self,
    ) -> None:
        ep = assess(Episode(), AsamEdition.FOURTH, FOURTH_NAMED, LevelOfCare.IOP)

        stored = dump_event(ep.history[-1])

        assert stored["asam_edition"] == "asam-criteria-4"
        assert stored["asam_ratings"] == THIRD_NAMED

    def test_given_a_third_edition_assessment_in_fourth_edition_names_when_validated_then_it_is_refused(
        self,
    ) -> None:
        with pytest.raises(ValidationError, match="4th-edition dimension names"):
            assess(Episode(), AsamEdition.THIRD, FOURTH_NAMED, LevelOfCare.IOP)

    def test_given_no_assessment_when_the_edition_is_asked_then_the_fourth_is_shown(self) -> None:
        ep = Episode().screened()

        assert asam.edition_of(None) is AsamEdition.FOURTH
        assert asam.edition_of(ep.s) is AsamEdition.FOURTH
        assert asam.edition_of(Episode().assessed().s) is AsamEdition.THIRD


class TestLevelNames:
    def test_given_level_2_5_when_named_then_partial_hospitalization_in_the_3rd_and_high_intensity_outpatient_in_the_4th(
        self,
    ) -> None:
        assert asam.level_display(LevelOfCare.PHP, AsamEdition.THIRD) == (
            "Level 2.5: Partial hospitalization services"
        )
        assert asam.level_display(LevelOfCare.PHP, AsamEdition.FOURTH) == (
            "Level 2.5: High-intensity outpatient"
        )

    @pytest.mark.parametrize("edition", list(AsamEdition))
    @pytest.mark.parametrize("level", list(LevelOfCare))
    def test_given_any_level_when_named_in_any_edition_then_it_has_a_number_and_a_name(
        self, level: LevelOfCare, edition: AsamEdition
    ) -> None:
        shown = asam.level_name(level, edition)

        assert shown.code
        assert shown.name
        assert shown.display == f"Level {shown.code}: {shown.name}"

    def test_given_the_fourth_edition_when_its_levels_are_listed_then_they_are_its_continuum(
        self,
    ) -> None:
        codes = {asam.level_name(level, AsamEdition.FOURTH).code for level in LevelOfCare}

        continuum = {"1.0", "1.5", "1.7", "2.1", "2.5", "2.7", "3.1", "3.5", "3.7", "4"}
        assert continuum <= codes
        assert codes - continuum == {"0.5", "3", "WM"}  # a 3rd-edition level, two merged values

    @pytest.mark.parametrize(
        ("level", "third", "fourth"),
        [
            (LevelOfCare.OUTPATIENT, "1", "1.5"),
            (LevelOfCare.IOP, "2.1", "2.1"),
            (LevelOfCare.PHP, "2.5", "2.5"),
            (LevelOfCare.POPULATION_SPECIFIC_RESIDENTIAL, "3.3", "3.5"),
            (LevelOfCare.MEDICALLY_MANAGED_RESIDENTIAL, "3.7", "3.7"),
            (LevelOfCare.INPATIENT, "4", "4"),
            (LevelOfCare.WITHDRAWAL_MANAGEMENT_1, "1-WM", "1.7"),
            (LevelOfCare.WITHDRAWAL_MANAGEMENT_2, "2-WM", "2.7"),
            (LevelOfCare.WITHDRAWAL_MANAGEMENT_3_2, "3.2-WM", "3.5"),
            (LevelOfCare.WITHDRAWAL_MANAGEMENT_3_7, "3.7-WM", "3.7"),
            (LevelOfCare.WITHDRAWAL_MANAGEMENT_4, "4-WM", "4"),
        ],
    )
    def test_given_a_3rd_edition_level_when_mapped_then_it_is_the_4th_editions_level(
        self, level: LevelOfCare, third: str, fourth: str
    ) -> None:
        assert asam.level_name(level, AsamEdition.THIRD).code == third
        assert asam.fourth_edition_level(level) == fourth

    def test_given_a_wm_level_when_shown_in_the_4th_edition_then_the_name_keeps_its_3rd_edition_level(
        self,
    ) -> None:
        shown = asam.level_display(LevelOfCare.WITHDRAWAL_MANAGEMENT_3_7, AsamEdition.FOURTH)

        assert shown == (
            "Level 3.7: Medically managed residential, with withdrawal management (3rd: 3.7-WM)"
        )


class TestWithdrawalManagementLevels:
    @pytest.mark.parametrize("level", asam.WITHDRAWAL_MANAGEMENT_LEVELS)
    def test_given_a_distinct_wm_level_when_the_client_is_referred_out_to_it_then_it_is_recorded(
        self, level: LevelOfCare
    ) -> None:
        ep = Episode().screened()

        events = ep.run(ep.make(c.ReferOut, actor=INTAKE, level_of_care=level, summary="WM"))

        assert events[-1].type == "client_referred_out"
        assert ep.s.referred_out_to is level

    def test_given_a_distinct_wm_level_when_an_assessment_recommends_it_then_it_is_recorded(
        self,
    ) -> None:
        ep = assess(
            Episode(), AsamEdition.FOURTH, FOURTH_NAMED, LevelOfCare.WITHDRAWAL_MANAGEMENT_2
        )

        assert ep.s.assessment is not None
        assert ep.s.assessment.recommended_level is LevelOfCare.WITHDRAWAL_MANAGEMENT_2

    @pytest.mark.parametrize(
        "level",
        [
            LevelOfCare.WITHDRAWAL_MANAGEMENT_4,
            LevelOfCare.MEDICALLY_MANAGED_INTENSIVE_OUTPATIENT,
            LevelOfCare.HIGH_INTENSITY_RESIDENTIAL,
        ],
    )
    def test_given_a_client_in_the_program_when_stepped_up_to_a_new_higher_level_then_it_is_accepted(
        self, level: LevelOfCare
    ) -> None:
        ep = Episode().in_program()

        events = ep.run(ep.make(c.StepUp, to_level=level, intent_to_return=True))

        assert events[0].type == "client_stepped_up"
        assert ep.s.stepped_up_to is level

    def test_given_a_client_in_the_program_when_stepped_up_to_ambulatory_wm_then_it_is_refused(
        self,
    ) -> None:
        ep = Episode().in_program()

        with pytest.raises(InvalidCommand, match="not a higher level of care"):
            ep.decide(
                ep.make(
                    c.StepUp, to_level=LevelOfCare.WITHDRAWAL_MANAGEMENT_1, intent_to_return=True
                )
            )

    def test_given_current_rules_when_the_merged_wm_value_is_named_at_referral_out_then_it_is_refused(
        self,
    ) -> None:
        ep = Episode().screened()

        with pytest.raises(InvalidCommand, match="withdrawal_management_3_2"):
            ep.decide(
                ep.make(
                    c.ReferOut,
                    actor=INTAKE,
                    level_of_care=LevelOfCare.WITHDRAWAL_MANAGEMENT,
                    summary="WM",
                )
            )

    def test_given_current_rules_when_an_assessment_recommends_the_merged_wm_value_then_it_is_refused(
        self,
    ) -> None:
        with pytest.raises(InvalidCommand, match="name the withdrawal management level"):
            assess(Episode(), AsamEdition.THIRD, THIRD_NAMED, LevelOfCare.WITHDRAWAL_MANAGEMENT)

    def test_given_an_admitted_episode_under_current_rules_when_stepped_up_to_the_merged_wm_value_then_it_is_refused(
        self,
    ) -> None:
        ep = Episode().in_program()

        with pytest.raises(InvalidCommand, match="withdrawal_management_4"):
            ep.decide(
                ep.make(c.StepUp, to_level=LevelOfCare.WITHDRAWAL_MANAGEMENT, intent_to_return=True)
            )

    def test_given_a_history_from_before_the_current_rules_when_the_merged_wm_value_is_named_then_it_is_accepted_as_before(
        self,
    ) -> None:
        referred = FirstRulesEpisode().screened()
        assessed = assess(
            FirstRulesEpisode(), AsamEdition.THIRD, THIRD_NAMED, LevelOfCare.WITHDRAWAL_MANAGEMENT
        )

        referred.run(
            referred.make(
                c.ReferOut,
                actor=INTAKE,
                level_of_care=LevelOfCare.WITHDRAWAL_MANAGEMENT,
                summary="WM",
            )
        )

        assert referred.s.referred_out_to is LevelOfCare.WITHDRAWAL_MANAGEMENT
        assert assessed.s.assessment is not None
        assert assessed.s.assessment.recommended_level is LevelOfCare.WITHDRAWAL_MANAGEMENT

    def test_given_an_episode_admitted_under_the_first_rules_when_stepped_up_to_the_merged_wm_value_then_it_is_accepted(
        self,
    ) -> None:
        ep = FirstRulesEpisode().in_program()
        assert not ep.s.rules.current

        current = Episode()
        current.state, current.history = ep.state, list(ep.history)
        current._ids = 100
        events = current.run(
            current.make(
                c.StepUp, to_level=LevelOfCare.WITHDRAWAL_MANAGEMENT, intent_to_return=True
            )
        )

        assert events[0].type == "client_stepped_up"

    def test_given_the_merged_wm_value_when_read_from_a_stored_event_then_it_is_shown_as_unnamed_wm(
        self,
    ) -> None:
        ep = FirstRulesEpisode().screened()
        ep.run(
            ep.make(
                c.ReferOut,
                actor=INTAKE,
                level_of_care=LevelOfCare.WITHDRAWAL_MANAGEMENT,
                summary="WM",
            )
        )
        stored = dump_event(ep.history[-1])

        assert stored["level_of_care"] == "withdrawal_management"
        assert asam.level_display(LevelOfCare.WITHDRAWAL_MANAGEMENT, AsamEdition.FOURTH) == (
            "Level WM: Withdrawal management (level not named)"
        )


class TestStepsBetweenLevels:
    def test_given_an_iop_client_when_stepped_down_to_4th_edition_level_1_7_then_it_is_accepted(
        self,
    ) -> None:
        ep = Episode().ready_to_step_down()
        ep.run(ep.make(c.StepDown, to_level=LevelOfCare.MEDICALLY_MANAGED_OUTPATIENT))
        assert ep.s.stage.value == "aftercare"

    def test_given_a_refused_step_up_then_the_message_lists_levels_above_iop_not_merged_wm(
        self,
    ) -> None:
        ep = Episode().in_program()
        with pytest.raises(InvalidCommand) as refused:
            ep.run(ep.make(c.StepUp, to_level=LevelOfCare.OUTPATIENT, intent_to_return=True))
        assert "withdrawal_management_3_7" in refused.value.message
        assert "withdrawal_management," not in refused.value.message
