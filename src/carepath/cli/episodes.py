"""`carepath episode ...`: the API, from a terminal. Tables for people, `--json` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import httpx


class CliError(Exception):
    """Raised to print one line to stderr and exit non-zero."""


def _request(
    api_url: str,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
) -> Any:
    try:
        response = httpx.request(
            method, api_url.rstrip("/") + path, json=body, params=params, timeout=30
        )
    except httpx.HTTPError as exc:
        raise CliError(
            f"cannot reach the CarePath API at {api_url} ({exc}); "
            "is `carepath up` running? set --api-url or CAREPATH_API_URL"
        ) from None
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = f"{problem.get('title', 'error')}: {problem.get('detail', response.text)}"
        except ValueError:
            detail = response.text or response.reason_phrase
        raise CliError(f"{detail} (HTTP {response.status_code})")
    return response.json()


def refer(api_url: str, client_ref: str, program: str, source: str, as_json: bool) -> None:
    body = {"client_ref": client_ref, "program_id": program, "referral_source": source}
    episode = _request(api_url, "POST", "/episodes", body)
    _print_episode(episode, as_json)


def show(api_url: str, episode_id: str, as_json: bool) -> None:
    _print_episode(_request(api_url, "GET", f"/episodes/{episode_id}"), as_json)


def events(api_url: str, episode_id: str, as_json: bool) -> None:
    result = _request(api_url, "GET", f"/episodes/{episode_id}/events")
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


def list_episodes(api_url: str, filters: dict[str, Any], as_json: bool) -> None:
    params = {key: value for key, value in filters.items() if value is not None}
    result = _request(api_url, "GET", "/episodes", params=params)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    rows = [
        (
            e["episode_id"],
            e["stage"] or "",
            e["program_id"] or "",
            e["primary_clinician"] or "",
            str(e["escalation_level"]),
            e["next_deadline"] or "",
        )
        for e in result["episodes"]
    ]
    _print_table(("EPISODE", "STAGE", "PROGRAM", "CLINICIAN", "ESCALATION", "NEXT DEADLINE"), rows)


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
    _print_table(("FIELD", "VALUE"), rows)


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "" if value is None else str(value)


def _print_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=False)]
    out = sys.stdout
    for row in (header, *rows):
        out.write(
            "  ".join(
                str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)
            ).rstrip()
            + "\n"
        )
