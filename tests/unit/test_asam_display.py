"""Where ASAM dimensions and levels of care are shown, they carry the assessment's
edition's names: the FHIR export, the episode view of the API, the command line."""

from __future__ import annotations

from typing import Any

from domain_scenario import INTAKE, Episode
from fhir.resources.R4B.bundle import Bundle
from test_audit_records import fhir_bundle, resources
from test_domain_asam import FOURTH_NAMED, assess

from api.schemas import EpisodeResponse
from audit.fhir_valuesets import code_problems
from cli.episodes import _asam_rows
from domain import commands as c
from domain.vocabulary import AsamEdition, LevelOfCare


def fourth_edition_php() -> Episode:
    return assess(Episode(), AsamEdition.FOURTH, FOURTH_NAMED, LevelOfCare.PHP)


def view(ep: Episode) -> dict[str, Any]:
    body = EpisodeResponse(episode_id=ep.episode_id, workflow_id="wf", state=ep.state)
    asam: dict[str, Any] = body.model_dump(mode="json")["asam"]
    return asam


class TestFhirExport:
    def test_given_a_fourth_edition_assessment_when_exported_then_the_observation_names_its_dimensions_and_level(
        self,
    ) -> None:
        document = fhir_bundle(fourth_edition_php())

        Bundle.model_validate(document)
        assert code_problems(document) == []
        (observation,) = resources(document, "Observation")
        components = [
            (part["code"]["coding"][0]["code"], part["code"]["text"], part["valueInteger"])
            for part in observation["component"]
        ]
        assert components[3] == ("4", "Dimension 4: Substance use-related risks", 3)
        assert components[5] == ("6", "Dimension 6: Person-centered considerations", 1)
        assert observation["valueCodeableConcept"]["coding"] == [
            {
                "system": "urn:carepath:asam:asam-criteria-4:level-of-care",
                "code": "2.5",
                "display": "Level 2.5: High-intensity outpatient",
            }
        ]
        assert "4th edition" in observation["code"]["text"]

    def test_given_a_third_edition_assessment_when_exported_then_the_observation_uses_the_third_editions_names(
        self,
    ) -> None:
        document = fhir_bundle(Episode().assessed(level=LevelOfCare.PHP))

        (observation,) = resources(document, "Observation")

        assert observation["component"][3]["code"]["text"] == "Dimension 4: Readiness to change"
        assert observation["valueCodeableConcept"]["text"] == (
            "Level 2.5: Partial hospitalization services"
        )
        provenance = resources(document, "Provenance")[0]
        assert {"reference": f"urn:uuid:{observation['id']}"} in provenance["target"]

    def test_given_no_assessment_when_exported_then_there_is_no_observation(self) -> None:
        document = fhir_bundle(Episode().screened())

        assert resources(document, "Observation") == []


class TestEpisodeView:
    def test_given_a_fourth_edition_assessment_when_viewed_then_dimensions_and_level_use_its_names(
        self,
    ) -> None:
        shown = view(fourth_edition_php())

        assert shown["edition"] == "asam-criteria-4"
        assert shown["dimensions"][3] == {
            "number": 4,
            "name": "Substance use-related risks",
            "rating": 3,
            "stored_as": "readiness_to_change",
        }
        assert shown["levels_of_care"] == [
            {
                "field": "recommended_level",
                "value": "php",
                "level": "2.5",
                "name": "High-intensity outpatient",
                "display": "Level 2.5: High-intensity outpatient",
            }
        ]

    def test_given_a_referral_out_to_a_wm_level_before_assessment_when_viewed_then_it_is_named_in_the_4th_edition(
        self,
    ) -> None:
        ep = Episode().screened()
        ep.run(
            ep.make(
                c.ReferOut,
                actor=INTAKE,
                level_of_care=LevelOfCare.WITHDRAWAL_MANAGEMENT_3_2,
                summary="needs residential withdrawal management",
            )
        )

        shown = view(ep)

        assert shown["dimensions"] == []
        assert [level["display"] for level in shown["levels_of_care"]] == [
            "Level 3.5: Clinically managed high-intensity residential, with withdrawal "
            "management (3rd: 3.2-WM)"
        ]

    def test_given_no_state_when_viewed_then_there_is_no_asam_view(self) -> None:
        body = EpisodeResponse(episode_id="e", workflow_id="wf", state=None)

        assert body.model_dump()["asam"] is None


class TestCommandLine:
    def test_given_an_assessed_episode_when_shown_then_rows_name_dimensions_and_levels(
        self,
    ) -> None:
        rows = _asam_rows(view(fourth_edition_php()))

        assert rows[0] == ("asam edition", "asam-criteria-4")
        assert ("dimension 4: Substance use-related risks", "3") in rows
        assert rows[-1] == ("recommended level", "Level 2.5: High-intensity outpatient")

    def test_given_nothing_assessed_or_referred_when_shown_then_no_asam_rows(self) -> None:
        assert _asam_rows(view(Episode().screened())) == []
        assert _asam_rows(None) == []
