"""`carepath episode ...`: the API, from a terminal. Tables for people, `--json` for scripts.

Every subcommand calls the HTTP API with a bearer token (`--token` or CAREPATH_TOKEN;
`carepath users add|rotate` prints one; the first `carepath up` a demo token per role).
Any staff command is `carepath episode do EPISODE COMMAND --field value ...` (or
`--body JSON`); the most frequent have their own subcommand. An error prints one line and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Nothing heavy is imported at the top: `carepath --help` and the parser import this
# module (cli/main.py). The HTTP client is the standard library's, imported when a request
# is made: importing httpx (with the command line of its own, rich and click) would take
# longer than all the rest of a command's start.

# CAREPATH_API_URL's default (workers.settings.Settings.api_url), repeated so that the
# API commands need not load the settings' pydantic models.
DEFAULT_API_URL = "http://127.0.0.1:8000"


class CliError(Exception):
    """Raised to print one line to stderr and exit non-zero."""


@dataclass(frozen=True)
class ApiClient:
    url: str
    token: str | None

    @classmethod
    def configured(cls, api_url: str | None, token: str | None) -> ApiClient:
        """The client the options (`--api-url`, `--token`) or else CAREPATH_API_URL and
        CAREPATH_TOKEN configure, read as workers.settings.Settings reads them (the
        variables' names in any case), without loading pydantic."""
        env = {name.lower(): value for name, value in os.environ.items()}
        return cls(
            api_url or env.get("carepath_api_url", DEFAULT_API_URL),
            token or env.get("carepath_token") or None,
        )

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        import http.client
        import urllib.error
        import urllib.parse
        import urllib.request

        sent = dict(headers or {})
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        url = self.url.rstrip("/") + path
        if params:
            url += "?" + urllib.parse.urlencode([(k, _query_text(v)) for k, v in params.items()])
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            sent["Content-Type"] = "application/json"
        try:
            call = urllib.request.Request(url, data=data, headers=sent, method=method)
            with urllib.request.urlopen(call, timeout=30) as response:
                content_type = response.headers.get("content-type", "")
                text = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as err:
            with err:
                answer = err.read().decode("utf-8", "replace")
            raise CliError(_problem_line(err.code, err.reason, answer, not self.token)) from None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise CliError(
                f"cannot reach the CarePath API at {self.url} ({reason}); "
                "is `carepath up` running? set --api-url or CAREPATH_API_URL"
            ) from None
        if content_type.startswith(("application/json", "application/fhir")):
            return json.loads(text)
        return text


def _query_text(value: Any) -> str:
    """A query parameter's value as the API reads it (booleans as `true`/`false`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _problem_line(status: int, reason: str, text: str, no_token: bool) -> str:
    try:
        problem = json.loads(text)
        detail = f"{problem.get('title', 'error')}: {problem.get('detail', text)}"
    except (ValueError, AttributeError):
        detail = text or reason
    if status == 401 and no_token:
        detail += " (pass --token or set CAREPATH_TOKEN)"
    return f"{detail} (HTTP {status})"


# --- the parser -------------------------------------------------------------------------


def configure(episode: argparse.ArgumentParser) -> None:
    """Declare the subcommands of `episode` (cli.main registers the command itself)."""
    ep = episode.add_subparsers(dest="episode_command", required=True, metavar="EPISODE_COMMAND")

    refer = ep.add_parser("refer", help="refer a client to a program, opening an episode")
    refer.add_argument("--client-ref", required=True)
    refer.add_argument("--program", required=True)
    refer.add_argument("--source", required=True, help="referral source, e.g. self, primary_care")
    listing = ep.add_parser("list", help="list episodes, filtered by search attributes")
    listing.add_argument("--stage")
    listing.add_argument("--program")
    listing.add_argument("--clinician")
    listing.add_argument("--min-escalation", type=int)
    listing.add_argument("--all", action="store_true", help="include closed episodes")
    reads = [
        ep.add_parser(name, help=text)
        for name, text in (
            ("show", "an episode's current state"),
            ("events", "an episode's stored events"),
            ("timeline", "an episode's whole timeline, from the event store"),
            ("deadlines", "everything pending for an episode and when it falls due"),
            ("attendance", "an episode's hours attended week by week against the minimum"),
        )
    ]
    for parser in reads:
        parser.add_argument("episode_id")

    caseload = ep.add_parser("caseload", help="open episodes per clinician (yours by default)")
    caseload.add_argument("--clinician")
    caseload.add_argument("--program")
    tasks = ep.add_parser("tasks", help="open escalation tasks, soonest due first")
    tasks.add_argument("--program")
    tasks.add_argument("--min-level", type=int)
    tasks.add_argument("--overdue", action="store_true", help="only overdue tasks")
    below = ep.add_parser(
        "below-intensity", help="open episodes whose latest judged week fell below the minimum"
    )
    below.add_argument("--program")
    below.add_argument("--clinician", help="only this primary clinician's episodes")
    due = ep.add_parser("due", help="upcoming deadlines across open episodes")
    due.add_argument("--program")
    due.add_argument("--before", help="ISO 8601 time, e.g. 2026-01-09T00:00:00Z")
    for parser in (listing, caseload, tasks, below, due):
        add_paging_options(parser)

    ep.add_parser("commands", help="list the staff commands, their endpoints and roles")
    do = ep.add_parser(
        "do",
        help="apply any staff command: do EPISODE COMMAND --field value ... | --body JSON",
        description="Fields are given as --field-name value (JSON for lists and objects) or "
        "all at once as --body JSON (or --body @file.json). See `carepath episode commands`.",
    )
    do.add_argument("episode_id")
    do.add_argument("name", metavar="COMMAND", help="e.g. record-attendance")
    do.add_argument("fields", nargs=argparse.REMAINDER, help="--field value pairs")

    admit = ep.add_parser("admit", help="admit an assessed client")
    admit.add_argument("episode_id")
    schedule = ep.add_parser("schedule", help="schedule a session")
    schedule.add_argument("episode_id")
    schedule.add_argument("session_id")
    schedule.add_argument("--kind", required=True, help="e.g. group_skills, individual")
    schedule.add_argument("--starts-at", required=True, help="ISO 8601 with offset")
    schedule.add_argument("--hours", required=True, type=float)
    attend = ep.add_parser("attend", help="record attendance of a session")
    attend.add_argument("episode_id")
    attend.add_argument("session_id")
    attend.add_argument("--status", required=True, help="attended, partial, excused, no_show")
    attend.add_argument("--hours", type=float, help="attended hours (partial only)")
    discharge = ep.add_parser("discharge", help="discharge the client (supervisor, director)")
    discharge.add_argument("episode_id")
    discharge.add_argument("--reason", required=True, help="completed, against_advice, ...")
    discharge.add_argument("--summary", required=True)

    for parser in (refer, do, admit, schedule, attend, discharge):
        parser.add_argument("--idempotency-key", help="retry safely: the same key applies once")
    for parser in ep.choices.values():
        add_connection_options(parser)


def add_paging_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="rows per page (the API's default if unset)")
    parser.add_argument("--cursor", help="start from this page (a previous answer's `next`)")
    parser.add_argument(
        "--all-pages", action="store_true", help="follow the pages to the end of the list"
    )


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--api-url", help="API base URL (CAREPATH_API_URL)")
    parser.add_argument("--token", help="bearer token (CAREPATH_TOKEN)")


# --- running -----------------------------------------------------------------------------


Params = Callable[[argparse.Namespace], dict[str, Any]] | None

# Read-only listings: the API path, the list in its answer, the table's columns, the query.
_LISTINGS: dict[str, tuple[str, str, tuple[str, ...], Params]] = {
    "timeline": (
        "/episodes/{episode_id}/timeline",
        "entries",
        ("seq", "type", "occurred_at", "actor_id", "actor_role"),
        None,
    ),
    "deadlines": (
        "/episodes/{episode_id}/deadlines",
        "pending",
        ("kind", "due_at", "due_local", "ref"),
        None,
    ),
    "attendance": (
        "/episodes/{episode_id}/attendance",
        "weeks",
        ("first_day", "last_day", "hours", "checked_hours", "minimum_hours", "below_minimum"),
        None,
    ),
    "list": (
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
        lambda a: {
            "stage": a.stage,
            "program_id": a.program,
            "primary_clinician": a.clinician,
            "min_escalation_level": a.min_escalation,
            "include_closed": a.all or None,
        },
    ),
    "caseload": (
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
        lambda a: {"clinician_id": a.clinician, "program_id": a.program},
    ),
    "tasks": (
        "/tasks",
        "tasks",
        ("episode_id", "task_id", "kind", "level", "due_at", "overdue", "primary_clinician"),
        lambda a: {
            "program_id": a.program,
            "min_level": a.min_level,
            "overdue_only": a.overdue or None,
        },
    ),
    "below-intensity": (
        "/worklists/below-intensity",
        "episodes",
        (
            "episode_id",
            "client_ref",
            "program_id",
            "first_day",
            "last_day",
            "attended_hours",
            "minimum_hours",
            "primary_clinician",
        ),
        lambda a: {"program_id": a.program, "clinician_id": a.clinician},
    ),
    "due": (
        "/deadlines",
        "deadlines",
        ("due_at", "episode_id", "kind", "ref", "primary_clinician"),
        lambda a: {"program_id": a.program, "due_before": a.before},
    ),
}


def run(api: ApiClient, args: argparse.Namespace) -> None:
    name = args.episode_command
    as_json: bool = args.json
    if name == "refer":
        body = {
            "client_ref": args.client_ref,
            "program_id": args.program,
            "referral_source": args.source,
        }
        _print_episode(api.request("POST", "/episodes", body, headers=_key(args)), as_json)
    elif name == "show":
        _print_episode(api.request("GET", f"/episodes/{args.episode_id}"), as_json)
    elif name == "events":
        _events(api.request("GET", f"/episodes/{args.episode_id}/events"), as_json)
    elif name in _LISTINGS:
        path, key, columns, params = _LISTINGS[name]
        query = _present(params(args)) if params else None
        if hasattr(args, "all_pages"):
            query = _present(query or {}) | _present({"limit": args.limit, "cursor": args.cursor})
        result = api.request(
            "GET", path.format(episode_id=getattr(args, "episode_id", "")), params=query or None
        )
        if getattr(args, "all_pages", False):
            result = _every_page(api, result, key)
        _rows(result, as_json, key, columns)
        if result.get("next"):
            _say_more(result["next"])
    elif name == "commands":
        _commands(as_json)
    else:
        command, fields = _command_of(args)
        _send(api, args, command, fields)


def _every_page(api: ApiClient, first: dict[str, Any], key: str) -> dict[str, Any]:
    """`first` with the rows of every page after it, following the `next` links."""
    rows = list(first[key])
    following = first.get("next")
    while following:
        page = api.request("GET", following)
        rows += page[key]
        following = page.get("next")
    return first | {key: rows, "next": None}


def _say_more(link: str) -> None:
    """Tell the reader (on stderr, so `--json` output stays one document) that the list
    goes on, and how to see the rest."""
    import urllib.parse

    cursor = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query).get("cursor", [""])[0]
    print(
        f"more rows exist than this page shows: add --all-pages to list them all, or "
        f"--cursor {cursor} for the next page",
        file=sys.stderr,
    )


def _present(params: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in params.items() if value is not None}


def _key(args: argparse.Namespace) -> dict[str, str]:
    key = getattr(args, "idempotency_key", None)
    return {"Idempotency-Key": key} if key else {}


def _command_of(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    name = args.episode_command
    if name == "admit":
        return "admit_client", {}
    if name == "schedule":
        return "schedule_session", {
            "session_id": args.session_id,
            "kind": args.kind,
            "starts_at": args.starts_at,
            "hours": args.hours,
        }
    if name == "attend":
        return "record_attendance", _present(
            {"session_id": args.session_id, "status": args.status, "hours": args.hours}
        )
    if name == "discharge":
        return "discharge", {"discharge_reason": args.reason, "summary": args.summary}
    assert name == "do", name
    # Options after COMMAND land among the fields (argparse.REMAINDER): take ours back.
    fields = list(args.fields)
    if "--json" in fields:
        fields.remove("--json")
        args.json = True
    if "--idempotency-key" in fields[:-1]:
        at = fields.index("--idempotency-key")
        args.idempotency_key = fields[at + 1]
        del fields[at : at + 2]
    return args.name, parse_fields(args.name, fields)


def parse_fields(command: str, tokens: Sequence[str]) -> dict[str, Any]:
    """`--field value` pairs (and `--body JSON|@file`) into the command's fields."""
    from api.command_specs import spec_for

    try:
        spec = spec_for(command)
    except KeyError as err:
        raise CliError(str(err.args[0])) from None
    fields: dict[str, Any] = {}
    items = list(tokens)
    while items:
        flag = items.pop(0)
        if not flag.startswith("--") or not items:
            raise CliError(f"expected --field value pairs after the command, got {flag!r}")
        name, raw = flag[2:].replace("-", "_"), items.pop(0)
        if name == "body":
            fields.update(_json_body(raw))
        else:
            fields[name] = raw if _is_text(spec.request_model, name) else _json_or_text(raw)
    return fields


def _json_body(raw: str) -> dict[str, Any]:
    try:
        text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
        body = json.loads(text)
    except (OSError, ValueError) as exc:
        raise CliError(f"--body is not a JSON object or a readable @file: {exc}") from None
    if not isinstance(body, dict):
        raise CliError('--body must be a JSON object, e.g. \'{"status": "attended"}\'')
    return body


def _is_text(model: Any, name: str) -> bool:
    """Whether a field is a string (or a string enum), so its value is never parsed as JSON."""
    schema = model.model_json_schema()
    prop = schema.get("properties", {}).get(name)
    if prop is None:
        return True  # a path field (session id, task id, ...) or a typo the API names
    options = prop.get("anyOf", [prop])
    for option in options:
        ref = option.get("$ref", "")
        resolved = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], option) if ref else option
        if resolved.get("type") == "string":
            return True
    return False


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _send(api: ApiClient, args: argparse.Namespace, command: str, fields: dict[str, Any]) -> None:
    from api.command_specs import spec_for

    try:
        spec = spec_for(command)
    except KeyError as err:
        raise CliError(str(err.args[0])) from None
    missing = [name for name in spec.path_params if name not in fields]
    if missing:
        raise CliError(f"{spec.name} needs --{missing[0].replace('_', '-')}")
    path = spec.path.format(**{name: fields.pop(name) for name in spec.path_params})
    result = api.request("POST", f"/episodes/{args.episode_id}{path}", fields, headers=_key(args))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    rows = [
        (str(e["seq"]), e["type"], e["occurred_at"], e["actor"]["user_id"])
        for e in result["events"]
    ]
    _print_table(("SEQ", "EVENT", "OCCURRED AT", "BY"), rows)
    print(f"stage: {result['stage']}  version: {result['version']}")


def _commands(as_json: bool) -> None:
    from api.command_specs import command_specs

    specs = command_specs()
    rows = [
        (
            spec.name,
            "POST /episodes/{id}" + spec.path,
            ", ".join(sorted(role.value for role in spec.roles)),
            ", ".join(spec.request_model.model_fields),
        )
        for spec in specs
    ]
    if as_json:
        keys = ("command", "endpoint", "roles", "fields")
        print(json.dumps([dict(zip(keys, row, strict=True)) for row in rows], indent=2))
        return
    _print_table(("COMMAND", "ENDPOINT", "ROLES", "FIELDS"), rows)


# --- output ----------------------------------------------------------------------------


def _events(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    rows = [
        (
            str(e["seq"]),
            e["type"],
            e["occurred_at"],
            f"{e['actor_id']} ({e['actor_role']})",
            e["hash"][:12],
        )
        for e in result["events"]
    ]
    _print_table(("SEQ", "EVENT", "OCCURRED AT", "ACTOR", "HASH"), rows)


def _rows(result: dict[str, Any], as_json: bool, key: str, columns: Sequence[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    rows = [tuple(_text(item.get(c)) for c in columns) for item in result[key]]
    _print_table(tuple(c.replace("_", " ").upper() for c in columns), rows)


def _print_episode(episode: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(episode, indent=2))
        return
    state = episode.get("state") or {}
    rows = [("episode", episode["episode_id"]), ("workflow", episode["workflow_id"])]
    # Empty fields (not yet recorded at this stage) would only bury the ones that are set.
    rows += [
        (key.replace("_", " "), _text(value))
        for key, value in state.items()
        if value not in (None, [], {}, False)
    ]
    rows += _asam_rows(episode.get("asam"))
    _print_table(("FIELD", "VALUE"), rows)


def _asam_rows(view: dict[str, Any] | None) -> list[tuple[str, str]]:
    """The ratings and levels of care as the assessment's edition names them."""
    if not view or not (view["dimensions"] or view["levels_of_care"]):
        return []
    rows = [("asam edition", view["edition"])]
    rows += [
        (f"dimension {d['number']}: {d['name']}", str(d["rating"])) for d in view["dimensions"]
    ]
    rows += [
        (level["field"].replace("_", " "), level["display"]) for level in view["levels_of_care"]
    ]
    return rows


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


def print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    out = sys.stdout
    for row in (header, *rows):
        out.write(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
            + "\n"
        )


_print_table = print_table
