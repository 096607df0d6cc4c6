"""Program versions: a digest per definition, the recorded versions a catalog checks a
changed file against, `migrate_program`'s rules, and the diff between two versions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from domain_scenario import CATALOG, CLINICIAN, DAY, SUPERVISOR, T0, Episode, types
from test_audit_records import chained

from audit.export import aftercare_status
from cli.programs import diff_programs, list_programs, setting_changes, show_program
from domain import commands as c
from domain.errors import (
    CommandNotAllowed,
    InvalidCommand,
    ProgramDefinitionInvalid,
    ProgramVersionIncompatible,
    ProgramVersionUnchanged,
    UnknownProgram,
    UnknownProgramVersion,
)
from domain.programs import ProgramCatalog, ProgramDefinition, parse_program, program_digest
from domain.state import Task
from domain.vocabulary import FIRST_RULES, StaffRecipient, TaskKind
from programs import BUILTIN_DIR, load_catalog, load_program_file

ADULT = CATALOG.get("adult-iop")


def adult_data(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((BUILTIN_DIR / "adult-iop.yaml").read_text("utf-8"))
    data.update(changes)
    return data


def variant(version: int, **sections: dict[str, Any]) -> ProgramDefinition:
    data = ADULT.model_dump(mode="json")
    data["version"] = version
    for name, changes in sections.items():
        data[name] = {**data[name], **changes} if isinstance(data[name], dict) else changes
    return parse_program(data)


def two_no_shows(version: int = 2) -> ProgramDefinition:
    return variant(version, escalation={"consecutive_no_shows": [1, 2]})


def program_dir(tmp_path: Path, current: dict[str, Any], *recorded: dict[str, Any]) -> Path:
    """A catalog directory: `current` as adult-iop.yaml, `recorded` under versions/."""
    (tmp_path / "versions").mkdir(parents=True)
    (tmp_path / "adult-iop.yaml").write_text(yaml.safe_dump(current), encoding="utf-8")
    for data in recorded:
        name = f"{data['id']}@{data['version']}.yaml"
        (tmp_path / "versions" / name).write_text(yaml.safe_dump(data), encoding="utf-8")
    return tmp_path


class TestDigest:
    def test_given_a_file_reworded_in_comments_layout_and_units_then_its_digest_is_unchanged(
        self, tmp_path: Path
    ) -> None:
        text = (BUILTIN_DIR / "adult-iop.yaml").read_text("utf-8")
        reworded = "# a new comment\n" + text.replace("duration: P4W", "weeks: 4")
        (tmp_path / "adult-iop.yaml").write_text(reworded, encoding="utf-8")
        assert program_digest(load_program_file(tmp_path / "adult-iop.yaml")) == program_digest(
            ADULT
        )

    def test_given_a_changed_setting_then_the_digest_changes(self) -> None:
        assert program_digest(variant(1, planning={"review_every": "P30D"})) != program_digest(
            ADULT
        )

    def test_given_a_file_without_a_version_then_it_is_version_1(self, tmp_path: Path) -> None:
        data = adult_data()
        del data["version"]
        (tmp_path / "p.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        assert load_program_file(tmp_path / "p.yaml").version == 1


class TestRecordedVersions:
    def test_every_shipped_program_is_recorded_at_its_current_version(self) -> None:
        catalog = load_catalog()
        for program_id in catalog.ids():
            current = catalog.get(program_id)
            assert current.version is not None
            recorded = catalog.version(program_id, current.version)
            assert program_digest(recorded) == program_digest(current)

    def test_given_a_file_changed_without_a_new_version_then_the_catalog_is_refused(
        self, tmp_path: Path
    ) -> None:
        changed = adult_data(planning={"review_every": "P30D"})
        directory = program_dir(tmp_path, changed, adult_data())
        with pytest.raises(ProgramDefinitionInvalid, match="a changed program is a new version"):
            load_catalog(directory)

    def test_given_a_new_version_recorded_then_both_versions_are_available(
        self, tmp_path: Path
    ) -> None:
        v2 = adult_data(version=2, planning={"review_every": "P30D"})
        catalog = load_catalog(program_dir(tmp_path, v2, adult_data(), v2))
        assert catalog.get("adult-iop").version == 2
        assert catalog.versions("adult-iop") == (1, 2)
        assert catalog.version("adult-iop", 1).planning.review_every.days == 14

    def test_given_a_current_version_not_recorded_then_the_catalog_is_refused(
        self, tmp_path: Path
    ) -> None:
        directory = program_dir(tmp_path, adult_data(version=2), adult_data())
        with pytest.raises(ProgramDefinitionInvalid, match="adult-iop@2 is not recorded"):
            load_catalog(directory)

    def test_given_a_current_file_older_than_a_recorded_version_then_it_is_refused(
        self, tmp_path: Path
    ) -> None:
        directory = program_dir(tmp_path, adult_data(), adult_data(), adult_data(version=2))
        with pytest.raises(ProgramDefinitionInvalid, match="must be the latest version"):
            load_catalog(directory)

    @pytest.mark.parametrize(
        ("name", "match"),
        [("adult-iop.yaml", "named <id>@<version>"), ("adult-iop@3.yaml", "not adult-iop@3")],
    )
    def test_given_a_recorded_file_misnamed_then_the_catalog_is_refused(
        self, tmp_path: Path, name: str, match: str
    ) -> None:
        directory = program_dir(tmp_path, adult_data(), adult_data())
        shutil.copy(BUILTIN_DIR / "adult-iop.yaml", directory / "versions" / name)
        with pytest.raises(ProgramDefinitionInvalid, match=match):
            load_catalog(directory)

    def test_given_a_version_recorded_twice_then_the_catalog_is_refused(
        self, tmp_path: Path
    ) -> None:
        directory = program_dir(tmp_path, adult_data(), adult_data())
        shutil.copy(BUILTIN_DIR / "adult-iop.yaml", directory / "versions" / "adult-iop@1.yml")
        with pytest.raises(ProgramDefinitionInvalid, match="recorded twice"):
            load_catalog(directory)

    def test_given_a_directory_without_recorded_versions_then_its_files_load_unchecked(
        self, tmp_path: Path
    ) -> None:
        (tmp_path / "adult-iop.yaml").write_text(
            yaml.safe_dump(adult_data(version=7)), encoding="utf-8"
        )
        assert load_catalog(tmp_path).versions("adult-iop") == (7,)

    def test_given_an_unknown_version_then_the_error_lists_the_recorded_ones(self) -> None:
        with pytest.raises(UnknownProgramVersion, match=r"no version 9: .*\(1;"):
            CATALOG.version("adult-iop", 9)
        with pytest.raises(UnknownProgram):
            CATALOG.version("no-such-program", 1)


def migrate(ep: Episode, program: ProgramDefinition | None, **fields: Any) -> c.MigrateProgram:
    version = fields.pop("to_version", program.version if program else 2)
    return ep.make(
        c.MigrateProgram, actor=SUPERVISOR, to_version=version, program=program, **fields
    )


class TestMigrateProgram:
    def test_given_a_referral_then_the_episode_records_its_program_version_and_digest(
        self,
    ) -> None:
        ep = Episode().referred()
        assert ep.history[0].program_version == 1  # type: ignore[union-attr]
        assert (ep.s.program_version, ep.s.program_digest) == (1, program_digest(ADULT))

    def test_given_an_unversioned_definition_then_the_referral_records_no_version(
        self,
    ) -> None:
        unversioned = ADULT.model_copy(update={"version": None})
        ep = Episode(catalog=ProgramCatalog({"adult-iop": unversioned})).referred()
        assert "program_version" not in ep.history[0].model_dump(exclude_none=False, mode="json")
        assert ep.s.program_version is None

    def test_given_an_episode_in_program_when_a_supervisor_migrates_it_then_the_event_names_both_versions(
        self,
    ) -> None:
        ep = Episode().in_program()
        v2 = two_no_shows()
        events = ep.run(migrate(ep, v2, reason="clinic policy"))
        assert types(events) == ["program_migrated"]
        [moved] = events
        assert (moved.from_version, moved.to_version) == (1, 2)  # type: ignore[union-attr]
        assert moved.to_digest == program_digest(v2)  # type: ignore[union-attr]
        assert parse_program(moved.definition) == v2  # type: ignore[union-attr]
        assert (ep.s.program_version, ep.s.program_digest) == (2, program_digest(v2))
        assert ep.s.rules.phase_durations is not None

    def test_given_an_episode_not_yet_admitted_when_migrated_then_no_timing_rules_are_recorded(
        self,
    ) -> None:
        ep = Episode().referred()
        [moved] = ep.run(migrate(ep, two_no_shows()))
        assert moved.rules is None  # type: ignore[union-attr]

    def test_given_an_episode_under_the_first_rules_when_migrated_then_it_keeps_them(
        self,
    ) -> None:
        ep = Episode(rules_revision=FIRST_RULES).in_program()
        [moved] = ep.run(migrate(ep, two_no_shows()))
        assert moved.rules is not None
        assert not moved.rules.current

    def test_given_a_clinician_when_migrating_then_it_is_not_allowed(self) -> None:
        ep = Episode().in_program()
        command = migrate(ep, two_no_shows()).model_copy(update={"actor": CLINICIAN})
        with pytest.raises(CommandNotAllowed):
            ep.decide(command)

    def test_given_no_definition_supplied_then_it_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(InvalidCommand, match="was not supplied"):
            ep.decide(migrate(ep, None, to_version=2))

    def test_given_the_version_it_runs_under_then_it_is_refused(self) -> None:
        ep = Episode().in_program()
        with pytest.raises(ProgramVersionUnchanged, match="already runs under adult-iop@1"):
            ep.decide(migrate(ep, ADULT))

    @pytest.mark.parametrize(
        ("program", "match"),
        [
            (variant(2, level_of_care="php"), "is a php program"),
            (variant(2, id="other-iop"), "not of the episode's program"),
            (
                variant(2, phases=[{"id": "other", "name": "Other", "duration": "P12W"}]),
                "current phase 'stabilization'",
            ),
            (variant(2, timezone="America/New_York"), "time zone"),
        ],
    )
    def test_given_a_version_that_cannot_carry_the_episode_then_it_is_refused(
        self, program: ProgramDefinition, match: str
    ) -> None:
        ep = Episode().in_program()
        with pytest.raises(ProgramVersionIncompatible, match=match):
            ep.decide(migrate(ep, program))

    def test_given_an_open_task_above_the_new_ladder_then_it_is_refused(self) -> None:
        ep = Episode().in_program()
        ep.state = ep.s.model_copy(update={"tasks": (*ep.s.tasks, *_open_task(level=4))})
        shorter = variant(
            2,
            escalation={
                "levels": [
                    {"level": 1, "task": "outreach", "due": "PT24H", "notify": ["supervisor"]},
                ],
                "consecutive_no_shows": [1],
                "window_level": 1,
                "no_contact_level": 1,
            },
            aftercare={"reassessment_level": 1},
        )
        with pytest.raises(ProgramVersionIncompatible, match="open level-4 task"):
            ep.decide(migrate(ep, shorter))


class TestTheVersionAnEpisodeFollows:
    """Views and exports read the program in the version the episode follows, not the
    catalog's current one."""

    @staticmethod
    def finishing_aftercare() -> ProgramDefinition:
        return variant(2, aftercare={"fhir_status": "finished"})

    def catalog(self) -> ProgramCatalog:
        return ProgramCatalog({"adult-iop": self.finishing_aftercare()}, {("adult-iop", 1): ADULT})

    def test_given_a_recorded_version_then_the_episode_gets_that_version_and_else_the_current(
        self,
    ) -> None:
        catalog = self.catalog()

        assert catalog.of_episode("adult-iop", 1) == ADULT
        assert catalog.of_episode("adult-iop", 2) == self.finishing_aftercare()
        assert catalog.of_episode("adult-iop", None) == self.finishing_aftercare()
        assert catalog.of_episode("adult-iop", 9) == self.finishing_aftercare()
        with pytest.raises(UnknownProgram):
            catalog.of_episode("no-such-program", 1)

    def test_given_an_episode_in_aftercare_under_version_1_when_version_2_is_current_then_the_export_follows_version_1_until_migrated(
        self,
    ) -> None:
        ep = Episode().in_aftercare()
        catalog = self.catalog()
        assert ADULT.aftercare.fhir_status == "active"

        before = aftercare_status(chained(ep.history), catalog)
        ep.run(migrate(ep, self.finishing_aftercare(), reason="aftercare counts as finished"))
        after = aftercare_status(chained(ep.history), catalog)

        assert (before, after) == ("active", "finished")


def _open_task(level: int) -> tuple[Any, ...]:
    return (
        Task(
            task_id="t-1",
            level=level,
            kind=TaskKind.DIRECTOR_REVIEW,
            opened_at=T0,
            due_at=T0 + DAY,
            notify=(StaffRecipient.CLINICAL_DIRECTOR,),
        ),
    )


class TestDiff:
    def test_given_two_versions_then_the_diff_names_each_changed_setting(self) -> None:
        changes = setting_changes(ADULT, two_no_shows())
        assert changes == [("escalation.consecutive_no_shows", [1, 2, 3], [1, 2])]

    def test_given_a_phase_and_a_ladder_rung_changed_then_they_are_named_by_id_and_level(
        self,
    ) -> None:
        data = ADULT.model_dump(mode="json")
        data["phases"][1]["duration"] = "P21D"
        data["escalation"]["levels"][2]["due"] = "PT24H"
        keys = [key for key, _, _ in setting_changes(ADULT, parse_program(data))]
        assert keys == ["escalation.levels[3].due", "phases[skills].duration"]

    def test_given_id_at_version_and_a_file_then_diff_prints_the_change(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "adult-iop-2noshows.yaml"
        path.write_text(yaml.safe_dump(two_no_shows().model_dump(mode="json")), encoding="utf-8")
        assert diff_programs("adult-iop@1", str(path)) == 1
        out = capsys.readouterr().out
        assert "adult-iop@1 -> adult-iop@2" in out
        assert "escalation.consecutive_no_shows: [1, 2, 3] -> [1, 2]" in out
        assert diff_programs("adult-iop", "adult-iop@1", as_json=True) == 0
        assert json.loads(capsys.readouterr().out)["changes"] == []

    def test_given_a_bad_name_then_diff_fails_with_a_message(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert diff_programs("adult-iop@x", "adult-iop") == 2
        assert diff_programs("adult-iop@9", "adult-iop") == 2
        assert "no version 9" in capsys.readouterr().err

    def test_list_and_show_print_versions_and_digests(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert list_programs(as_json=True) == 0
        rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
        assert rows["adult-iop"]["versions"] == [1]
        assert rows["adult-iop"]["digest"] == program_digest(ADULT)
        assert list_programs() == 0
        assert "adult-iop" in capsys.readouterr().out
        assert show_program("adult-iop", 1) == 0
        assert "escalation.consecutive_no_shows = [1, 2, 3]" in capsys.readouterr().out
        assert show_program("adult-iop", as_json=True) == 0
        assert json.loads(capsys.readouterr().out)["label"] == "adult-iop@1"
        assert show_program("adult-iop", 5) == 2
        assert list_programs(Path("/no/such/dir")) == 2
