"""`carepath audit ...`: verify, replay, determinism, export (reading the servers
directly, see cli.audit) and the access log (through the API, see cli.access).

`audit verify` is the one command that verifies the hash chains and checkpoints;
`carepath db verify` is its deprecated spelling (cli.main rewrites it, with a note).
"""

from __future__ import annotations

import argparse
from typing import Annotated, Literal

import typer

from cli.output import OPTIONS

app = typer.Typer(
    help="Verify, replay, check determinism, export (reads the servers); the access log.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

DataDir = Annotated[
    str | None, typer.Option("--data-dir", help="embedded servers' data dir (CAREPATH_DATA_DIR)")
]
OneEpisode = Annotated[str | None, typer.Argument(metavar="[EPISODE]", help="one episode")]
Every = Annotated[bool, typer.Option("--all", help="every episode")]


def _run(data_dir: str | None, **fields: object) -> int:
    from cli import audit as audit_cli
    from cli.config import settings

    args = argparse.Namespace(json=OPTIONS.json, data_dir=data_dir, **fields)
    return audit_cli.run(settings(data_dir), args)


def _one_or_all(episode_id: str | None, every: bool) -> None:
    if (episode_id is None) == (not every):
        raise typer.BadParameter("give one EPISODE or --all")


@app.command("verify")
def verify(
    episode_id: OneEpisode = None,
    every: Every = False,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            "--checkpoint",
            "--checkpoint-file",
            help="a checkpoint file kept outside the database to compare with (default: the "
            "newest stored or published one); its signature is checked under "
            "CAREPATH_CHECKPOINT_KEY, and the stored checkpoint of its number must match it",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> int:
    """Recompute the hash chains, check the checkpoints; exit 1 on any anomaly."""
    _one_or_all(episode_id, every)
    return _run(
        data_dir, audit_command="verify", episode_id=episode_id, all=every, checkpoint=checkpoint
    )


@app.command("replay")
def replay(
    episode_id: Annotated[str, typer.Argument(metavar="EPISODE")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="ISO 8601 time with an offset, e.g. 2025-03-01T14:30:00Z: the events that "
            "occurred at or before it; without it, the state is compared with the live workflow",
        ),
    ] = None,
    data_dir: DataDir = None,
) -> int:
    """Verify an episode's chain and show its timeline and state as of a moment."""
    return _run(data_dir, audit_command="replay", episode_id=episode_id, as_of=as_of)


@app.command("determinism")
def determinism(
    episode_id: OneEpisode = None,
    every: Every = False,
    include_closed: Annotated[
        bool, typer.Option("--include-closed", help="with --all: closed runs as well")
    ] = False,
    data_dir: DataDir = None,
) -> int:
    """Replay live workflow histories with this code; exit 1 if any breaks."""
    _one_or_all(episode_id, every)
    return _run(
        data_dir,
        audit_command="determinism",
        episode_id=episode_id,
        all=every,
        include_closed=include_closed,
    )


@app.command("export")
def export(
    episode_id: Annotated[str, typer.Argument(metavar="EPISODE")],
    export_format: Annotated[Literal["jsonl", "csv", "fhir"], typer.Option("--format")],
    output: Annotated[
        str | None, typer.Option("--output", help="write to this file instead of stdout")
    ] = None,
    data_dir: DataDir = None,
) -> int:
    """Export an episode's record (JSON lines, CSV or a FHIR R4B bundle)."""
    return _run(
        data_dir,
        audit_command="export",
        episode_id=episode_id,
        export_format=export_format,
        output=output,
    )


@app.command("access-log")
def access_log(
    log_format: Annotated[Literal["table", "json", "fhir"] | None, typer.Option("--format")] = None,
    episode: Annotated[str | None, typer.Option("--episode", help="only this episode")] = None,
    user: Annotated[str | None, typer.Option("--user", help="only this user id")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO 8601 time with offset")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO 8601 time with offset")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 1000,
    output: Annotated[
        str | None, typer.Option("--output", help="write to this file instead of stdout")
    ] = None,
) -> int:
    """Who read or changed episode data (auditors; through the API, so it is logged too)."""
    from cli import access
    from cli.episodes import ApiClient

    args = argparse.Namespace(
        log_format=log_format,
        episode=episode,
        user=user,
        since=since,
        until=until,
        limit=limit,
        output=output,
        json=OPTIONS.json,
    )
    return access.run(ApiClient.configured(OPTIONS.api_url, OPTIONS.token), args)
