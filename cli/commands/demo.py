"""`carepath demo walkthrough`: one episode from referral to discharge, on a running stack.

It drives the API as the staff would, with the demo users' tokens that the first
`carepath up` wrote into the data dir (or `--token` for every step), sending the bodies
in `examples/` (the same the README's "Try it" uses), and prints each step.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.output import OPTIONS, CliError, print_json

app = typer.Typer(
    help="A scripted walkthrough of one episode on a running `make up`.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _group() -> None:
    """A scripted walkthrough of one episode on a running `make up`."""


# (role, what the step does, command, path arguments, body), in the order of care.
STEPS: tuple[tuple[str, str, str, dict[str, str], dict[str, Any]], ...] = (
    ("intake_coordinator", "start the screening", "start-screening", {}, {}),
    ("intake_coordinator", "record the screening", "record-screening", {}, {"@": "screening.json"}),
    (
        "clinician",
        "record the assessment",
        "record-assessment",
        {},
        {
            "asam_edition": "asam-criteria-3",
            "recommended_level": "iop",
            "diagnoses": ["F10.20"],
            "asam_ratings": {"@": "asam-ratings.json"},
        },
    ),
    ("clinician", "admit the client", "admit-client", {}, {}),
    ("clinician", "record the treatment plan", "record-treatment-plan", {}, {"plan": {"@": "treatment-plan.json"}}),
    (
        "intake_coordinator",
        "schedule a group session that began ten minutes ago",
        "schedule-session",
        {},
        {"session_id": "s-1", "kind": "group_skills", "starts_at": "now-10m", "hours": 3},
    ),
    ("clinician", "record the attendance", "record-attendance", {"session_id": "s-1"}, {"status": "attended"}),
    (
        "clinician",
        "review the plan: advance to the next phase",
        "complete-plan-review",
        {},
        {"outcome": "advance_phase", "reason": "stabilization goals met early"},
    ),
    ("clinician", "record the relapse prevention plan", "record-relapse-prevention-plan", {}, {"plan": {"@": "relapse-prevention-plan.json"}}),
    ("clinician", "record the aftercare plan", "record-aftercare-plan", {}, {"plan": {"@": "aftercare-plan.json"}}),
    ("clinician", "step down to outpatient aftercare", "step-down", {}, {"to_level": "outpatient"}),
    ("intake_coordinator", "record the first aftercare check-in", "record-check-in", {}, {"check_in": 1}),
    (
        "supervisor",
        "discharge: completed",
        "discharge",
        {},
        {"discharge_reason": "completed", "summary": "completed the program; aftercare in place"},
    ),
)  # fmt: skip


def _examples_dir() -> Path:
    for folder in (Path("examples"), Path(__file__).resolve().parents[2] / "examples"):
        if folder.is_dir():
            return folder
    raise CliError("no examples/ directory here: run from the CarePath checkout")


def _resolved(value: Any, folder: Path) -> Any:
    """`{"@": "file.json"}` is that file's JSON (a whole body, or one field)."""
    if isinstance(value, dict):
        if set(value) == {"@"}:
            return json.loads((folder / value["@"]).read_text(encoding="utf-8"))
        merged: dict[str, Any] = {}
        for key, item in value.items():
            if key == "@":
                merged |= _resolved({"@": item}, folder)
            else:
                merged[key] = _resolved(item, folder)
        return merged
    return value


@app.command("walkthrough")
def walkthrough(
    program: Annotated[
        str, typer.Option("--program", help="the program to refer to")
    ] = "adult-iop",
    client_ref: Annotated[str, typer.Option("--client-ref")] = "MRN-DEMO-0001",
    data_dir: Annotated[
        str | None,
        typer.Option(
            "--data-dir", help="where `carepath up` wrote the demo tokens (CAREPATH_DATA_DIR)"
        ),
    ] = None,
) -> int:
    """Refer, screen, assess, admit, plan, schedule, attend, step down and discharge one
    episode, printing each step."""
    from cli.commands.episode import resolve_times
    from cli.episodes import ApiClient

    tokens = _tokens(data_dir)
    folder = _examples_dir()
    entries = _catalog()

    def api(role: str) -> ApiClient:
        return ApiClient.configured(OPTIONS.api_url, OPTIONS.token or tokens.get(role))

    record: list[dict[str, Any]] = []
    referral = {"client_ref": client_ref, "program_id": program, "referral_source": "self"}
    episode = api("intake_coordinator").request("POST", "/episodes", referral)
    episode_id = episode["episode_id"]
    _say(1, "intake_coordinator", f"refer {client_ref} to {program}", f"episode {episode_id}")
    record.append({"step": "refer", "episode_id": episode_id})
    for number, (role, what, name, path_args, body) in enumerate(STEPS, start=2):
        entry = entries[name]
        fields = resolve_times(entry, _resolved(body, folder))
        path = entry["path"].format(**path_args)
        result = api(role).request("POST", f"/episodes/{episode_id}{path}", fields)
        kinds = ", ".join(e["type"] for e in result["events"])
        _say(number, role, what, f"{kinds} -> {result['stage']}")
        record.append({"step": name, "events": kinds, "stage": result["stage"]})
    if OPTIONS.json:
        print_json({"episode_id": episode_id, "steps": record})
    else:
        print(f"done: episode {episode_id} is {record[-1]['stage']}")
    return 0


def _say(number: int, role: str, what: str, outcome: str) -> None:
    if not OPTIONS.json:
        print(f"{number:>2}. [{role}] {what}: {outcome}", flush=True)


def _catalog() -> dict[str, dict[str, Any]]:
    from cli.catalog import load_catalog

    return {entry["name"]: entry for entry in load_catalog()}


def _tokens(data_dir: str | None) -> dict[str, str]:
    if OPTIONS.token:
        return {}
    from api.auth import demo_tokens
    from cli.config import settings

    found = {role.value: token for role, token in demo_tokens(settings(data_dir).data_dir).items()}
    if not found:
        raise CliError(
            "no demo tokens in the data dir: run `make up` first (its first start writes them), "
            "set CAREPATH_DATA_DIR, or pass --token with a clinical director's token"
        )
    return found
