"""`carepath episode ...`: the API, from a terminal. Tables for people, `--json` for scripts.

This module holds the HTTP client (`ApiClient`, on the standard library) and how answers
are printed; the subcommands themselves are declared in `cli.commands.episode`. Every
call carries a bearer token (`--token` or CAREPATH_TOKEN; `carepath users add|rotate`
prints one; the first `carepath up` a demo token per role).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cli.output import CliError, Clock, cell, print_json
from cli.output import print_table as print_table

__all__ = ["DEFAULT_API_URL", "ApiClient", "CliError", "print_table"]

# Nothing heavy is imported at the top: `carepath --help` and the parser import this
# module (cli/main.py). The HTTP client is the standard library's, imported when a request
# is made: importing httpx (with the command line of its own, rich and click) would take
# longer than all the rest of a command's start.

# CAREPATH_API_URL's default (workers.settings.Settings.api_url), repeated so that the
# API commands need not load the settings' pydantic models.
DEFAULT_API_URL = "http://127.0.0.1:8000"


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
            raise _refusal(err.code, err.reason, answer, not self.token) from None
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


def _refusal(status: int, reason: str, text: str, no_token: bool) -> CliError:
    """The error of an HTTP error answer: its problem's title and detail on one line; the
    problem document (with each field's error) comes along for printing."""
    problem: dict[str, Any] | None = None
    try:
        parsed = json.loads(text)
        problem = parsed if isinstance(parsed, dict) else None
    except ValueError:
        pass
    if problem is not None:
        detail = f"{problem.get('title', 'error')}: {problem.get('detail', text)}"
    else:
        detail = text or reason
    if status == 401 and no_token:
        detail += " (pass --token or set CAREPATH_TOKEN)"
    return CliError(f"{detail} (HTTP {status})", problem)


# --- output ----------------------------------------------------------------------------


def print_events(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(result)
        return
    clock = Clock()
    zone = clock.zone_of(result.get("program_id"), result.get("timezone"))
    rows = [
        (
            str(e["seq"]),
            e["type"],
            clock.show(e["occurred_at"], zone),
            f"{e['actor_id']} ({e['actor_role']})",
            e["hash"][:12],
        )
        for e in result["events"]
    ]
    print_table(("SEQ", "EVENT", "OCCURRED AT", "ACTOR", "HASH"), rows)


def print_rows(result: dict[str, Any], as_json: bool, key: str, columns: Sequence[str]) -> None:
    """A listing: its rows as a table, moments on each row's program clock."""
    if as_json:
        print_json(result)
        return
    clock = Clock()
    rows = []
    for item in result[key]:
        zone = clock.zone_of(
            item.get("program_id") or result.get("program_id"),
            item.get("timezone") or result.get("timezone"),
        )
        rows.append(tuple(clock.show(item.get(c), zone) for c in columns))
    print_table(tuple(c.replace("_", " ").upper() for c in columns), rows)


def print_episode(episode: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(episode)
        return
    state = episode.get("state") or {}
    clock = Clock()
    zone = clock.zone_of(state.get("program_id") or episode.get("program_id"))
    rows = [("episode", episode["episode_id"]), ("workflow", episode["workflow_id"])]
    # Empty fields (not yet recorded at this stage) would only bury the ones that are set.
    rows += [
        (key.replace("_", " "), clock.show(value, zone))
        for key, value in state.items()
        if value not in (None, [], {}, False)
    ]
    rows += _asam_rows(episode.get("asam"))
    print_table(("FIELD", "VALUE"), rows)


def print_command_result(result: dict[str, Any], as_json: bool) -> None:
    """The answer of a staff command: the events it stored, the stage and version."""
    if as_json:
        print_json(result)
        return
    clock = Clock()
    rows = [
        (str(e["seq"]), e["type"], clock.show(e["occurred_at"], None), e["actor"]["user_id"])
        for e in result["events"]
    ]
    print_table(("SEQ", "EVENT", "OCCURRED AT", "BY"), rows)
    sys.stdout.write(f"stage: {result['stage']}  version: {result['version']}\n")


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


_text = cell
