"""`carepath episode ...`: refer, look at and change episodes through the API.

The reads (`show`, `list`, worklists, ...) are declared here by hand. Every staff command
is its own subcommand, generated from the committed catalog of the command models
(`cli.catalog`): `carepath episode record-assessment EPISODE --asam-edition ...`, one
option per field with its type, choices, whether it is required and an example; path
fields (a session id, a task id) are arguments after EPISODE. A JSON-valued option takes
the JSON or `@file`; `--body JSON|@file` gives the whole body (options win over it).
"""

from __future__ import annotations

import inspect
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from typer.core import TyperGroup

from cli.catalog import load_catalog
from cli.episodes import ApiClient, print_command_result, print_episode, print_events, print_rows
from cli.output import OPTIONS, CliError, print_json, print_table, progress, warn


class _StaffCommands(TyperGroup):
    """The reads declared here, plus one subcommand per catalog entry, each built only
    when it is the one run (or completed): building all of them would cost a start."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(e["name"] for e in load_catalog())]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry = _entry(cmd_name)
        if entry is None:
            return None
        return TyperGroup(name=entry["name"], help=_escape(entry["description"]))

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        entry = _entry(args[0]) if args and args[0] not in self.commands else None
        if entry is not None:
            self.commands[args[0]] = build_staff_command(entry, args[0])
        return super().resolve_command(ctx, args)


def _entry(name: str) -> dict[str, Any] | None:
    wanted = {short: full for full, short in _SHORT_NAMES.items()}.get(name, name)
    return next((e for e in load_catalog() if e["name"] == wanted), None)


app = typer.Typer(
    cls=_StaffCommands,
    help="Refer clients, record care, look at episodes (through the API).",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

Episode = Annotated[str, typer.Argument(metavar="EPISODE", help="the episode's id")]
Program = Annotated[str | None, typer.Option("--program", help="only this program")]
Limit = Annotated[
    int | None,
    typer.Option(
        "--limit", help="rows per page (the API's default if unset)", rich_help_panel="Paging"
    ),
]
Cursor = Annotated[
    str | None,
    typer.Option(
        "--cursor",
        help="start from this page (a previous answer's `next`)",
        rich_help_panel="Paging",
    ),
]
AllPages = Annotated[
    bool,
    typer.Option(
        "--all-pages", help="follow the pages to the end of the list", rich_help_panel="Paging"
    ),
]
IdempotencyKey = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="retry safely: the same key applies once"),
]


def _api() -> ApiClient:
    return ApiClient.configured(OPTIONS.api_url, OPTIONS.token)


# --- reads -----------------------------------------------------------------------------


@app.command("refer")
def refer(
    client_ref: Annotated[
        str, typer.Option("--client-ref", help="the client's record number, e.g. MRN-004211")
    ],
    program: Annotated[str, typer.Option("--program", help="the program, e.g. adult-iop")],
    source: Annotated[
        str, typer.Option("--source", help="referral source, e.g. self, primary_care")
    ],
    idempotency_key: IdempotencyKey = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="print only the new episode's id")
    ] = False,
) -> None:
    """Refer a client to a program, opening an episode.

    Example: carepath episode refer --client-ref MRN-004211 --program adult-iop --source primary_care -q
    """
    body = {"client_ref": client_ref, "program_id": program, "referral_source": source}
    episode = _api().request("POST", "/episodes", body, headers=_key(idempotency_key))
    if quiet:
        sys.stdout.write(episode["episode_id"] + "\n")
        return
    print_episode(episode, OPTIONS.json)


@app.command("show")
def show(episode_id: Episode) -> None:
    """An episode's current state."""
    print_episode(_api().request("GET", f"/episodes/{episode_id}"), OPTIONS.json)


@app.command("events")
def events(episode_id: Episode) -> None:
    """An episode's stored events."""
    print_events(_api().request("GET", f"/episodes/{episode_id}/events"), OPTIONS.json)


def _listing(
    path: str,
    key: str,
    columns: tuple[str, ...],
    query: dict[str, Any] | None = None,
    paging: tuple[int | None, str | None, bool] | None = None,
) -> None:
    api = _api()
    params = _present(query or {})
    if paging is not None:
        params |= _present({"limit": paging[0], "cursor": paging[1]})
    result = api.request("GET", path, params=params or None)
    if paging is not None and paging[2]:
        result = _every_page(api, result, key)
    print_rows(result, OPTIONS.json, key, columns)
    if result.get("next"):
        _say_more(result["next"])


@app.command("timeline")
def timeline(episode_id: Episode) -> None:
    """An episode's whole timeline, from the event store."""
    _listing(
        f"/episodes/{episode_id}/timeline",
        "entries",
        ("seq", "type", "occurred_at", "actor_id", "actor_role"),
    )


@app.command("deadlines")
def deadlines(episode_id: Episode) -> None:
    """Everything pending for an episode and when it falls due (the clinic's clock)."""
    _listing(f"/episodes/{episode_id}/deadlines", "pending", ("kind", "due_at", "ref"))


@app.command("attendance")
def attendance(episode_id: Episode) -> None:
    """An episode's hours attended week by week against the minimum."""
    _listing(
        f"/episodes/{episode_id}/attendance",
        "weeks",
        ("first_day", "last_day", "hours", "checked_hours", "minimum_hours", "below_minimum"),
    )


@app.command("list")
def listing(
    stage: Annotated[str | None, typer.Option("--stage", help="e.g. in_program")] = None,
    program: Program = None,
    clinician: Annotated[str | None, typer.Option("--clinician")] = None,
    min_escalation: Annotated[int | None, typer.Option("--min-escalation")] = None,
    include_closed: Annotated[bool, typer.Option("--all", help="include closed episodes")] = False,
    limit: Limit = None,
    cursor: Cursor = None,
    all_pages: AllPages = False,
) -> None:
    """List episodes, newest first, filtered by search attributes."""
    _listing(
        "/episodes",
        "episodes",
        (
            "episode_id",
            "stage",
            "program_id",
            "primary_clinician",
            "escalation_level",
            "next_deadline",
        ),
        {
            "stage": stage,
            "program_id": program,
            "primary_clinician": clinician,
            "min_escalation_level": min_escalation,
            "include_closed": include_closed or None,
        },
        (limit, cursor, all_pages),
    )


@app.command("caseload")
def caseload(
    clinician: Annotated[str | None, typer.Option("--clinician")] = None,
    program: Program = None,
    limit: Limit = None,
    cursor: Cursor = None,
    all_pages: AllPages = False,
) -> None:
    """Open episodes per clinician (yours by default)."""
    _listing(
        "/caseload",
        "entries",
        (
            "clinician_id",
            "episode_id",
            "program_id",
            "discipline",
            "is_primary",
            "stage",
            "escalation_level",
        ),
        {"clinician_id": clinician, "program_id": program},
        (limit, cursor, all_pages),
    )


@app.command("tasks")
def tasks(
    program: Program = None,
    min_level: Annotated[int | None, typer.Option("--min-level")] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="only overdue tasks")] = False,
    limit: Limit = None,
    cursor: Cursor = None,
    all_pages: AllPages = False,
) -> None:
    """Open escalation tasks, soonest due first."""
    _listing(
        "/tasks",
        "tasks",
        ("episode_id", "task_id", "kind", "level", "due_at", "overdue", "primary_clinician"),
        {"program_id": program, "min_level": min_level, "overdue_only": overdue or None},
        (limit, cursor, all_pages),
    )


@app.command("below-intensity")
def below_intensity(
    program: Program = None,
    clinician: Annotated[
        str | None, typer.Option("--clinician", help="only this primary clinician's episodes")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
    all_pages: AllPages = False,
) -> None:
    """Open episodes whose last judged week fell below the program's minimum hours."""
    _listing(
        "/worklists/below-intensity",
        "episodes",
        ("episode_id", "client_ref", "program_id", "first_day", "last_day", "attended_hours", "minimum_hours", "primary_clinician"),
        {"program_id": program, "clinician_id": clinician},
        (limit, cursor, all_pages),
    )  # fmt: skip


@app.command("due")
def due(
    program: Program = None,
    before: Annotated[
        str | None, typer.Option("--before", help="ISO 8601 time, e.g. 2026-01-09T00:00:00Z")
    ] = None,
    limit: Limit = None,
    cursor: Cursor = None,
    all_pages: AllPages = False,
) -> None:
    """Upcoming deadlines across open episodes."""
    _listing(
        "/deadlines",
        "deadlines",
        ("due_at", "episode_id", "kind", "ref", "primary_clinician"),
        {"program_id": program, "due_before": before},
        (limit, cursor, all_pages),
    )


@app.command("commands")
def commands() -> None:
    """The staff commands: endpoint, roles, and each field with its type."""
    entries = load_catalog()
    if OPTIONS.json:
        print_json(
            [
                {
                    "command": e["name"],
                    "endpoint": "POST /episodes/{id}" + e["path"],
                    "roles": e["roles"],
                    "fields": [
                        {k: f[k] for k in ("name", "type", "required", "choices", "example")}
                        for f in e["fields"]
                    ],
                }
                for e in entries
            ]
        )
        return
    rows = [
        (
            e["name"],
            "POST /episodes/{id}" + e["path"],
            ", ".join(e["roles"]),
            ", ".join(f["name"] + ("" if f["required"] else "?") for f in e["fields"]),
        )
        for e in entries
    ]
    print_table(("COMMAND", "ENDPOINT", "ROLES", "FIELDS (? optional)"), rows)


# --- paging -------------------------------------------------------------------------------


def _every_page(api: ApiClient, first: dict[str, Any], key: str) -> dict[str, Any]:
    """`first` with the rows of every page after it, following the `next` links."""
    rows = list(first[key])
    following = first.get("next")
    pages = 1
    with progress("fetching pages", "pages") as step:
        while following:
            step(pages, None)
            page = api.request("GET", following)
            rows += page[key]
            following = page.get("next")
            pages += 1
    return first | {key: rows, "next": None}


def _say_more(link: str) -> None:
    """Tell the reader (on stderr, so `--json` output stays one document) that the list
    goes on, and how to see the rest."""
    import urllib.parse

    cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query).get("cursor", [""])[0]
    warn(
        "more rows exist than this page shows: add --all-pages to list them all, or "
        f"--cursor {cursor} for the next page"
    )


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _key(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key} if idempotency_key else {}


# --- staff commands, generated from the catalog ---------------------------------------------

_TIME = "ISO 8601 time with offset"
_TYPES: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool}
# Aliases kept from earlier releases, hidden from help.
_SHORT_NAMES = {
    "admit-client": "admit",
    "schedule-session": "schedule",
    "record-attendance": "attend",
}


def read_json_value(option: str, raw: str) -> Any:
    """A JSON-valued option: the JSON itself, or `@file` naming a file that holds it."""
    if raw.startswith("@"):
        try:
            raw = Path(raw[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{option}: cannot read {raw[1:]}: {exc.strerror}") from None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise CliError(f"{option} is not valid JSON ({exc}); give JSON or @file.json") from None


def _escape(text: str) -> str:
    """Text shown as is by Rich's markup (JSON's brackets are not style tags)."""
    return text.replace("[", "\\[")


def _shell_word(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    safe = all(c.isalnum() or c in "-_.:/@+" for c in text)
    return text if safe and text else "'" + text.replace("'", "'\\''") + "'"


def example_line(entry: dict[str, Any]) -> str:
    """A whole command line that the command accepts, from its declared example."""
    words = ["carepath", "episode", entry["name"], "EPISODE_ID"]
    words += [_shell_word(entry["path_example"][name]) for name in entry["path_params"]]
    for field in entry["fields"]:
        if field["name"] in entry["example"]:
            words += [field["option"], _shell_word(field["example"])]
    return " ".join(words)


def _option_help(field: dict[str, Any]) -> str:
    text = field["help"].strip()
    parts = [text if text.endswith((".", "?", ")")) else text + "."] if text else []
    parts.append(f"Type: {field['type']}" + (", or @file" if field["json"] else "") + ".")
    if field["type"] == _TIME:
        parts.append("Or now, now-10m, now+2h, now+1d.")
    if field["choices"] and (len(field["choices"]) > 4 or field["json"]):
        parts.append("One of: " + ", ".join(field["choices"]) + ".")
    if field["required"]:
        parts.append("Required (here or in --body).")
    elif field["default"] is not None:
        parts.append(f"Default: {field['default']}.")
    example = field["example"]
    parts.append(f"e.g. {example if isinstance(example, str) else json.dumps(example)}")
    return _escape(" ".join(parts))


def _field_parameter(field: dict[str, Any]) -> inspect.Parameter:
    if field["choices"] and not field["json"]:
        kind: Any = Literal[tuple(field["choices"])]
        metavar = "CHOICE" if len(field["choices"]) > 4 else None
    elif field["json"]:
        kind, metavar = str, "JSON|@FILE"
    else:
        kind = _TYPES[field["kind"]]
        metavar = {"string": "TEXT", "integer": "INTEGER", "number": "NUMBER"}.get(field["kind"])
    declared = [field["option"]]
    if field["kind"] == "boolean" and not field["json"]:
        declared = [f"{field['option']}/--no-{field['option'][2:]}"]
        metavar = None
    option = typer.Option(
        *declared,
        help=_option_help(field),
        metavar=metavar,
        rich_help_panel="Required fields" if field["required"] else "Optional fields",
        show_default=False,
    )
    return inspect.Parameter(
        field["name"],
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[kind | None, option],
    )


def _staff_command(entry: dict[str, Any]) -> Callable[..., None]:
    """The subcommand of one catalog entry: arguments, one option per field, `--body`."""

    def run(**given: Any) -> None:
        send_command(entry, given)

    params = [
        inspect.Parameter("episode_id", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Episode)
    ]
    for name in entry["path_params"]:
        params.append(
            inspect.Parameter(
                name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[
                    str, typer.Argument(metavar=name.upper(), help=f"the {name.replace('_', ' ')}")
                ],
            )
        )
    ordered = sorted(entry["fields"], key=lambda field: not field["required"])
    params += [_field_parameter(field) for field in ordered]
    params.append(
        inspect.Parameter(
            "body",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=Annotated[
                str | None,
                typer.Option(
                    "--body",
                    metavar="JSON|@FILE",
                    help="the whole request body as JSON, or @file.json; options win over it",
                ),
            ],
        )
    )
    params.append(
        inspect.Parameter(
            "idempotency_key",
            inspect.Parameter.KEYWORD_ONLY,
            default=None,
            annotation=IdempotencyKey,
        )
    )
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__name__ = entry["kind"]
    return run


def send_command(entry: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """POST the command to the API and print its answer (the answer is returned too)."""
    body: dict[str, Any] = {}
    if given.get("body") is not None:
        whole = read_json_value("--body", given["body"])
        if not isinstance(whole, dict):
            raise CliError('--body must be a JSON object, e.g. \'{"status": "attended"}\'')
        body.update(whole)
    for field in entry["fields"]:
        value = given.get(field["name"])
        if value is None:
            continue
        body[field["name"]] = read_json_value(field["option"], value) if field["json"] else value
    body = resolve_times(entry, body)
    missing = [f["option"] for f in entry["fields"] if f["required"] and f["name"] not in body]
    if missing:
        raise typer.BadParameter(
            f"{entry['name']} needs {', '.join(missing)} (or the field in --body); "
            f"see `carepath episode {entry['name']} --help`"
        )
    path = entry["path"].format(**{name: given[name] for name in entry["path_params"]})
    result: dict[str, Any] = _api().request(
        "POST",
        f"/episodes/{given['episode_id']}{path}",
        body,
        headers=_key(given.get("idempotency_key")),
    )
    print_command_result(result, OPTIONS.json)
    return result


_RELATIVE = re.compile(r"^now(?:([+-])(\d+)([smhd]))?$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def resolve_times(entry: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A time field may be given as `now`, `now-10m`, `now+2h`, `now+1d` (UTC)."""
    from datetime import UTC, datetime, timedelta

    fixed = dict(body)
    for field in entry["fields"]:
        value = fixed.get(field["name"])
        if field["type"] != _TIME or not isinstance(value, str):
            continue
        match = _RELATIVE.match(value.strip())
        if match is None:
            continue
        sign, amount, unit = match.groups()
        shift = timedelta(**{_UNITS[unit]: int(amount)}) if unit else timedelta()
        moment = datetime.now(UTC) + (-shift if sign == "-" else shift)
        fixed[field["name"]] = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    return fixed


def build_staff_command(entry: dict[str, Any], name: str) -> Any:
    """The click command of one catalog entry (under `name`: its own or a short alias)."""
    run = _staff_command(entry)
    example = _escape(example_line(entry))
    roles = ", ".join(entry["roles"])
    epilog = (
        f"Example:\n\n{example}\n\n"
        f"Or the whole body: carepath episode {entry['name']} EPISODE_ID --body @body.json\n\n"
        f"Endpoint: POST /episodes/{{id}}{_escape(entry['path'])} (roles: {roles})"
    )
    single = typer.Typer(
        add_completion=False, rich_markup_mode="rich", context_settings=app.info.context_settings
    )
    single.command(name, help=_escape(entry["description"]), epilog=epilog)(run)
    command = typer.main.get_command(single)
    command.name = name
    command.hidden = name != entry["name"]
    return command
