"""Programs are data: the shipped definitions load, and a bad file is rejected at load
with the field and the reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from domain.durations import legacy_units
from domain.errors import ProgramDefinitionInvalid, UnknownProgram
from domain.programs import ProgramCatalog, parse_program
from programs import BUILTIN_DIR, load_catalog, load_program_file

MINIMAL: dict[str, Any] = {
    "id": "tiny-iop",
    "name": "Tiny",
    "population": "adult",
    "phases": [{"id": "only", "name": "Only phase", "weeks": 6}],
}


def write(tmp_path: Path, name: str, data: Any) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class TestShippedPrograms:
    def test_adult_and_adolescent_programs_ship(self) -> None:
        assert load_catalog().ids() == ("adolescent-iop", "adult-iop", "drill")

    def test_adult_program_matches_the_design_defaults(self) -> None:
        adult = load_catalog().get("adult-iop")
        assert [p.weeks for p in adult.phases] == [4, 4, 4]
        assert (adult.intensity.min_weekly_hours, adult.intensity.max_weekly_hours) == (9, 19)
        assert adult.aftercare.check_in_offsets == tuple(
            timedelta(days=d) for d in (7, 30, 90, 180, 365)
        )
        assert adult.escalation.consecutive_no_shows == (1, 2, 3)

    def test_adolescent_program_needs_at_least_six_hours(self) -> None:
        assert load_catalog().get("adolescent-iop").intensity.min_weekly_hours == 6

    def test_shipped_files_spell_out_every_section(self) -> None:
        for path in BUILTIN_DIR.glob("*.yaml"):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            assert set(data) >= {"intensity", "planning", "escalation", "aftercare", "hold"}

    def test_minimal_definition_gets_the_design_defaults(self) -> None:
        program = parse_program(MINIMAL)
        assert program.planning.review_every == timedelta(days=14)
        assert program.escalation.no_contact == timedelta(days=14)


class TestInvalidDefinitions:
    @pytest.mark.parametrize(
        ("change", "field", "reason"),
        [
            ({"population": "elderly"}, "population", "pattern"),
            ({"intensity": {"min_weekly_hours": 20}}, "intensity", "must not exceed"),
            ({"phases": []}, "phases", "at least 1"),
            ({"planning": {"review_every": "PT0S"}}, "planning.review_every", "greater"),
            ({"planning": {"review_every": 14}}, "planning.review_every", "no unit"),
            ({"attendance": {"no_show_grace": "soon"}}, "attendance.no_show_grace", "duration"),
            ({"aftercare": {"check_in_offsets": ["P30D", "P7D"]}}, "aftercare", "increasing"),
            ({"timezone": "New_York"}, "timezone", "America/New_York"),
            ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
            ({"escalation": {"consecutive_no_shows": [2, 1]}}, "escalation", "increasing"),
            ({"escalation": {"window_level": 9}}, "escalation", "window_level"),
            ({"unknown_section": 1}, "unknown_section", "Extra inputs"),
        ],
    )
    def test_invalid_field_is_named_with_its_reason(
        self, change: dict[str, Any], field: str, reason: str
    ) -> None:
        with pytest.raises(ProgramDefinitionInvalid, match=rf"field '{field}.*{reason}"):
            parse_program({**MINIMAL, **change}, source="x.yaml")

    def test_duplicate_phase_ids_are_rejected(self) -> None:
        phases = [{"id": "a", "name": "A", "weeks": 3}] * 2
        with pytest.raises(ProgramDefinitionInvalid, match="phase ids must be unique"):
            parse_program({**MINIMAL, "phases": phases})

    def test_phases_longer_than_the_program_allows_are_rejected(self) -> None:
        phases = [{"id": "a", "name": "A", "weeks": 20}]
        with pytest.raises(ProgramDefinitionInvalid, match="phases last 20 weeks"):
            parse_program({**MINIMAL, "phases": phases})

    def test_ladder_levels_must_be_numbered_in_order(self) -> None:
        levels = [
            {"level": 2, "task": "outreach", "due": "PT24H", "notify": ["supervisor"]},
        ]
        escalation = {"levels": levels, "consecutive_no_shows": [1], "window_level": 1}
        escalation |= {"no_contact_level": 1}
        with pytest.raises(ProgramDefinitionInvalid, match=r"numbered 1..n"):
            parse_program({**MINIMAL, "escalation": escalation})

    def test_ladder_thresholds_cannot_name_undefined_levels(self) -> None:
        escalation = {"consecutive_no_shows": [1, 2, 3, 4, 5]}
        with pytest.raises(ProgramDefinitionInvalid, match="more levels than are defined"):
            parse_program({**MINIMAL, "escalation": escalation})

    def test_aftercare_levels_must_exist_on_the_ladder(self) -> None:
        with pytest.raises(ProgramDefinitionInvalid, match="aftercare escalation levels"):
            parse_program({**MINIMAL, "aftercare": {"reassessment_level": 7}})


class TestLoader:
    def test_loads_yaml_and_json_from_a_directory(self, tmp_path: Path) -> None:
        write(tmp_path, "a.yaml", MINIMAL)
        (tmp_path / "b.json").write_text(
            '{"id": "json-iop", "name": "J", "population": "adolescent",'
            ' "phases": [{"id": "p", "name": "P", "weeks": 4}]}',
            encoding="utf-8",
        )
        (tmp_path / "notes.txt").write_text("ignored", encoding="utf-8")
        assert load_catalog(tmp_path).ids() == ("json-iop", "tiny-iop")

    def test_invalid_yaml_is_rejected_with_the_path(self, tmp_path: Path) -> None:
        path = tmp_path / "bad.yaml"
        path.write_text("id: [unclosed", encoding="utf-8")
        with pytest.raises(ProgramDefinitionInvalid, match=r"bad\.yaml: not valid YAML"):
            load_program_file(path)

    def test_non_mapping_file_is_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(ProgramDefinitionInvalid, match="expected a mapping"):
            load_program_file(write(tmp_path, "list.yaml", [1, 2]))

    def test_unreadable_file_is_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(ProgramDefinitionInvalid, match="cannot read the file"):
            load_program_file(tmp_path / "missing.yaml")

    def test_the_same_program_id_twice_is_rejected(self, tmp_path: Path) -> None:
        write(tmp_path, "a.yaml", MINIMAL)
        write(tmp_path, "b.yaml", MINIMAL)
        with pytest.raises(ProgramDefinitionInvalid, match="defined twice"):
            load_catalog(tmp_path)

    def test_empty_directory_is_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(ProgramDefinitionInvalid, match="no program definitions"):
            load_catalog(tmp_path)

    def test_missing_directory_is_rejected(self, tmp_path: Path) -> None:
        with pytest.raises(ProgramDefinitionInvalid, match="not a directory"):
            load_catalog(tmp_path / "nope")

    def test_unknown_program_lists_the_known_ones(self) -> None:
        catalog = ProgramCatalog({})
        with pytest.raises(UnknownProgram, match="none loaded"):
            catalog.get("x")
        assert "adult-iop" in load_catalog()


class TestDurations:
    """Given program durations, when read, then ISO 8601 and the old unit-named integers
    come to the same values."""

    def test_given_old_integer_fields_when_parsed_then_they_equal_the_iso_durations(
        self,
    ) -> None:
        old = parse_program(
            MINIMAL
            | {
                "phases": [{"id": "p", "name": "P", "weeks": 4}],
                "planning": {"review_every_days": 30, "review_reminder_days": 0},
                "attendance": {"no_show_grace_minutes": 45},
                "escalation": {"window_days": 10, "no_contact_due_hours": 12},
                "aftercare": {"check_in_offsets_days": [7, 30], "check_in_window_days": 3},
                "hold": {"review_days": 5},
                "authorizations": {"reminder_days_before_expiry": 2},
            }
        )
        new = parse_program(
            MINIMAL
            | {
                "phases": [{"id": "p", "name": "P", "duration": "P4W"}],
                "planning": {"review_every": "P30D", "review_reminder": "PT0S"},
                "attendance": {"no_show_grace": "PT45M"},
                "escalation": {"window": "P10D", "no_contact_due": "PT12H"},
                "aftercare": {"check_in_offsets": ["P7D", "P30D"], "check_in_window": "P3D"},
                "hold": {"review": "P5D"},
                "authorizations": {"reminder_before_expiry": "P2D"},
            }
        )
        assert old == new
        assert new.phases[0].weeks == 4

    def test_given_seconds_when_parsed_then_timers_can_be_seconds_long(self) -> None:
        program = parse_program(MINIMAL | {"attendance": {"no_show_grace": "PT30S"}})
        assert program.attendance.no_show_grace == timedelta(seconds=30)

    def test_given_both_names_for_one_duration_when_parsed_then_it_is_refused(self) -> None:
        with pytest.raises(ProgramDefinitionInvalid, match="either 'review_days' or 'review'"):
            parse_program(MINIMAL | {"hold": {"review_days": 5, "review": "P5D"}})

    def test_given_the_drill_program_when_loaded_then_it_is_marked_not_clinical(self) -> None:
        drill = load_catalog().get("drill")
        assert drill.clinical is False
        assert "not clinical" in drill.name.lower() or "drill" in drill.name.lower()
        assert drill.attendance.no_show_grace <= timedelta(seconds=30)

    def test_given_a_phase_minimum_longer_than_the_phase_when_parsed_then_it_is_refused(
        self,
    ) -> None:
        phase = {"id": "p", "name": "P", "duration": "P4W", "min_duration": "P5W"}
        with pytest.raises(ProgramDefinitionInvalid, match="min_duration must not exceed"):
            parse_program(MINIMAL | {"phases": [phase]})

    def test_given_an_old_integer_field_holding_text_when_parsed_then_it_is_refused(
        self,
    ) -> None:
        with pytest.raises(ProgramDefinitionInvalid, match="review_days must be a number"):
            parse_program(MINIMAL | {"hold": {"review_days": "P5D"}})

    def test_given_something_other_than_a_mapping_then_legacy_units_leaves_it(self) -> None:
        assert legacy_units(None, {"review_days": ("review", "days")}) is None
