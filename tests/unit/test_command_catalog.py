"""The staff commands' catalog, their `--help`, and the README's example bodies.

The catalog (cli/command_catalog.json) is what the command line builds the staff
subcommands from, so that starting does not import the domain; it must equal what the
command models give now (`python -m cli.catalog` rewrites it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.command_specs import spec_for
from cli.catalog import CATALOG_FILE, build_catalog, load_catalog, render
from cli.main import hoist_global_options, main

ROOT = Path(__file__).resolve().parents[2]


def test_given_the_command_models_when_the_catalog_is_built_then_it_is_the_committed_one() -> None:
    assert CATALOG_FILE.read_text(encoding="utf-8") == render(build_catalog()), (
        "cli/command_catalog.json drifted from the command models: run `python -m cli.catalog`"
    )


def test_given_record_assessment_help_then_every_field_shows_with_its_type_and_an_example(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    spec = spec_for("record-assessment")

    code = main(["episode", "record-assessment", "--help"])

    out = " ".join(capsys.readouterr().out.split())
    assert code == 0
    entry = next(e for e in load_catalog() if e["name"] == "record-assessment")
    assert {f["name"] for f in entry["fields"]} == set(spec.request_model.model_fields)
    for field in entry["fields"]:
        assert field["option"] in out
        assert f"Type: {field['type']}" in out
        assert "e.g." in out
    assert "Type: JSON object (AsamRatings), or @file." in out
    assert "e.g. asam-criteria-3" in out
    assert "Required fields" in out
    assert "Optional fields" in out
    assert "Example: carepath episode record-assessment EPISODE_ID --asam-edition" in out


def test_given_every_staff_command_then_it_has_its_own_subcommand_with_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for entry in load_catalog():
        assert main(["episode", entry["name"], "--help"]) == 0, entry["name"]
        assert entry["summary"].split(":")[0][:30] in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("record-screening", "examples/screening.json"),
        ("record-treatment-plan", "examples/treatment-plan.json"),
        ("record-relapse-prevention-plan", "examples/relapse-prevention-plan.json"),
        ("record-aftercare-plan", "examples/aftercare-plan.json"),
    ],
)
def test_given_an_example_body_then_the_command_model_accepts_it(name: str, path: str) -> None:
    body = json.loads((ROOT / path).read_text(encoding="utf-8"))
    model = spec_for(name).request_model
    fields = set(model.model_fields)
    model.model_validate(body if set(body) <= fields else {"plan": body})


def test_given_the_asam_ratings_example_then_an_assessment_with_it_validates() -> None:
    ratings = json.loads((ROOT / "examples/asam-ratings.json").read_text(encoding="utf-8"))
    body = {**spec_for("record-assessment").body_example, "asam_ratings": ratings}
    spec_for("record-assessment").request_model.model_validate(body)


@pytest.mark.parametrize(
    ("argv", "front", "token", "as_json"),
    [
        (["episode", "show", "E", "--token", "t"], ["--token", "t"], "t", False),
        (["--json", "episode", "show", "E"], ["--json"], None, True),
        (
            ["episode", "record-x", "E", "--token=t", "--json"],
            ["--token", "t", "--json"],
            "t",
            True,
        ),
        (["episode", "show", "--", "--json"], [], None, False),
    ],
)
def test_given_global_options_anywhere_when_hoisted_then_they_go_first_and_never_to_a_command(
    argv: list[str], front: list[str], token: str | None, as_json: bool
) -> None:
    moved, found = hoist_global_options(argv)

    assert moved[: len(front)] == front
    assert found.token == token
    assert found.json is as_json
    assert sorted(moved) == sorted(front + [a for a in argv if a not in front and "=" not in a])


def test_given_json_when_a_usage_error_happens_then_stderr_is_one_json_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["episode", "record-attendance", "E", "s-1", "--json"])

    err = capsys.readouterr().err
    assert code == 2
    assert "--status" in json.loads(err)["error"]


def test_given_a_refused_command_problem_then_each_field_error_is_printed() -> None:
    from cli.output import field_errors

    problem = {
        "errors": [
            {"loc": ["body", "diagnoses", 0], "msg": "String should match pattern"},
            {"rule": "R-ADMIT", "message": "assessment missing"},
        ]
    }

    assert field_errors(problem) == [
        "diagnoses.0: String should match pattern",
        "R-ADMIT: assessment missing",
    ]
