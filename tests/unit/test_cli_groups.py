"""The command groups wired into `carepath`: programs and measures, through `main()`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from cli.output import OPTIONS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _fresh_options() -> None:
    OPTIONS.json = False
    OPTIONS.token = None
    OPTIONS.api_url = None


def test_given_two_versions_with_the_same_settings_when_diffed_then_it_exits_0_saying_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["programs", "diff", "adult-iop@1", "adult-iop"])

    assert code == 0
    assert "no setting changed" in capsys.readouterr().out


def test_given_an_unrecorded_version_under_json_when_shown_then_the_error_is_one_json_object(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["programs", "show", "adult-iop@9", "--json"])

    assert code == 2
    assert "no version 9" in json.loads(capsys.readouterr().err)["error"]


def test_given_a_version_that_is_not_a_number_then_show_refuses_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["programs", "show", "adult-iop@two"])

    assert code == 1
    assert "whole number" in capsys.readouterr().err


def test_given_programs_list_under_json_then_each_program_has_its_versions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["--json", "programs", "list"])

    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert code == 0
    assert rows["adult-iop"]["versions"] == [1]


def test_given_a_date_that_is_not_one_when_measures_runs_then_it_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["measures", "--start", "last-monday"])

    assert code == 2
    assert "not a date" in capsys.readouterr().err


def test_given_no_api_when_measures_runs_then_it_says_where_it_looked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["measures", "--start", "2026-01-01", "--api-url", "http://127.0.0.1:9"])

    assert code == 1
    assert "cannot reach the CarePath API at http://127.0.0.1:9" in capsys.readouterr().err


def _carepath(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`carepath ARGV` in a fresh interpreter: completion answers by exiting the process."""
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *argv],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_given_bash_when_completion_is_shown_then_it_is_a_script_for_carepath() -> None:
    # The shell is detected from the calling process, so a bash calls carepath.
    done = subprocess.run(
        ["bash", "-c", '"$0" -m cli.main --show-completion; exit $?', sys.executable],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "_carepath_completion()" in done.stdout


def test_given_a_partial_staff_command_when_the_shell_completes_it_then_the_command_is_offered() -> (
    None
):
    done = _carepath(
        env={
            "_CAREPATH_COMPLETE": "complete_bash",
            "COMP_WORDS": "carepath episode record-as",
            "COMP_CWORD": "2",
        }
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["record-assessment"]


def test_given_an_unknown_program_when_simulate_runs_then_it_exits_2_before_starting_servers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["simulate", "--program", "no-such-program", "--episodes", "3"])

    assert code == 2
    assert "no-such-program" in capsys.readouterr().err


def test_given_simulate_help_then_it_names_the_what_if_and_the_outputs(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["simulate", "--help"])

    out = capsys.readouterr().out
    assert code == 0
    assert "--compare" in out
    assert "--plot" in out
    assert "simulation-out" in out


def test_given_a_refused_command_when_printed_then_its_field_errors_follow_the_first_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cli.output import print_error

    print_error(
        "ValidationFailed: the request is invalid at: diagnoses; see 'errors' for each field",
        {"errors": [{"loc": ["body", "diagnoses"], "msg": "too short"}]},
    )

    assert capsys.readouterr().err.splitlines() == [
        "carepath: error: ValidationFailed: the request is invalid at: diagnoses",
        "  diagnoses: too short",
    ]
