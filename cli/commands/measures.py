"""`carepath measures`: the quality measures of a date range, from the API's `GET /measures`
(supervisors, the clinical director, auditors); definitions in docs/measures.md."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

import typer

from cli.output import OPTIONS

app = typer.Typer(rich_markup_mode="rich", context_settings={"help_option_names": ["-h", "--help"]})


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)") from None


@app.command("measures")
def measures(
    start: Annotated[str, typer.Option(help="first day of the range (YYYY-MM-DD)")],
    end: Annotated[
        str | None, typer.Option(help="last day of the range (YYYY-MM-DD); default today")
    ] = None,
    program: Annotated[
        str | None, typer.Option(help="one program's id; default every program you see")
    ] = None,
) -> int:
    """Engagement, follow-up and flow measures of the episodes in a date range.

    Example: carepath measures --start 2026-01-01 --end 2026-06-30 --program adult-iop
    """
    from cli.episodes import ApiClient
    from cli.measures import run_measures

    last = _day(end) if end else datetime.now().date()
    client = ApiClient.configured(OPTIONS.api_url, OPTIONS.token)
    return run_measures(client, _day(start), last, program, OPTIONS.json)
