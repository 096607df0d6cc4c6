"""`audit export`: an episode's stored events as JSON lines, CSV, or a FHIR R4B Bundle.

JSON lines and CSV carry every stored column an auditor needs to re-verify the chain
(seq, type, times, actor, command id, previous hash, hash) and the hashed payload; CSV
holds the payload as canonical JSON, the exact bytes the hash covers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from audit import fhir
from audit.asof import fold_stored
from audit.errors import EpisodeNotInStore, UnknownExportFormat
from domain.actors import Actor
from domain.programs import ProgramCatalog
from store.chain import canonical_json
from store.event_store import EventStore
from store.records import StoredEvent


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"
    FHIR = "fhir"


MEDIA_TYPES = {
    ExportFormat.JSONL: "application/x-ndjson",
    ExportFormat.CSV: "text/csv",
    ExportFormat.FHIR: "application/fhir+json",
}

COLUMNS = (
    "seq",
    "type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "actor_id",
    "actor_role",
    "command_id",
    "prev_hash",
    "hash",
    "payload",
)


def parse_format(text: str) -> ExportFormat:
    try:
        return ExportFormat(text.lower())
    except ValueError:
        raise UnknownExportFormat(
            f"unknown export format {text!r}: use one of {', '.join(f.value for f in ExportFormat)}"
        ) from None


def row(stored: StoredEvent) -> dict[str, Any]:
    """One stored event as a JSON-ready record."""
    return {
        "seq": stored.seq,
        "type": stored.event_type,
        "schema_version": stored.schema_version,
        "occurred_at": stored.occurred_at.isoformat(),
        "recorded_at": stored.recorded_at.isoformat(),
        "actor_id": stored.actor_id,
        "actor_role": stored.actor_role,
        "command_id": stored.command_id,
        "prev_hash": stored.prev_hash,
        "hash": stored.hash,
        "payload": stored.payload,
    }


def to_jsonl(stored: Sequence[StoredEvent]) -> str:
    return "".join(json.dumps(row(e), sort_keys=True, ensure_ascii=False) + "\n" for e in stored)


def to_csv(stored: Sequence[StoredEvent]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for event in stored:
        record = row(event)
        record["payload"] = canonical_json(event.payload).decode("utf-8")
        writer.writerow(record)
    return out.getvalue()


def to_fhir(
    stored: Sequence[StoredEvent],
    *,
    exporter: Actor,
    exported_at: datetime,
    aftercare_status: str = "active",
    patient_system: str = fhir.CLIENT_SYSTEM,
) -> str:
    state = fold_stored(stored)
    if state is None:  # pragma: no cover - a stored stream starts with its referral
        raise EpisodeNotInStore(stored[0].episode_id if stored else "?")
    document = fhir.bundle(
        stored,
        state,
        exporter=exporter,
        exported_at=exported_at,
        aftercare_status=aftercare_status,
        patient_system=patient_system,
    )
    return json.dumps(fhir.as_json(document), indent=1, ensure_ascii=False) + "\n"


def render(
    stored: Sequence[StoredEvent],
    fmt: ExportFormat,
    *,
    exporter: Actor,
    exported_at: datetime,
    aftercare_status: str = "active",
    patient_system: str = fhir.CLIENT_SYSTEM,
) -> str:
    """The export's text in the given format (pure); `patient_system` is the identifier
    system of the client's Patient (CAREPATH_FHIR_PATIENT_IDENTIFIER_SYSTEM)."""
    if fmt is ExportFormat.JSONL:
        return to_jsonl(stored)
    if fmt is ExportFormat.CSV:
        return to_csv(stored)
    return to_fhir(
        stored,
        exporter=exporter,
        exported_at=exported_at,
        aftercare_status=aftercare_status,
        patient_system=patient_system,
    )


def aftercare_status(stored: Sequence[StoredEvent], programs: ProgramCatalog | None) -> str:
    """Whether the episode's program, in the version the episode follows, counts aftercare
    as an active or finished FHIR episode."""
    program_id = stored[0].payload.get("program_id") if stored else None
    if programs is None or not isinstance(program_id, str) or program_id not in programs:
        return "active"
    return programs.of_episode(program_id, program_version(stored)).aftercare.fhir_status


def program_version(stored: Sequence[StoredEvent]) -> int | None:
    """The program version an episode follows after its last event: the one its referral
    recorded, or the last one it was migrated to."""
    version: int | None = None
    for event in stored:
        if event.event_type == "client_referred":
            version = event.payload.get("program_version")
        elif event.event_type == "program_migrated":
            version = event.payload.get("to_version")
    return version if isinstance(version, int) else None


async def export_episode(
    store: EventStore,
    episode_id: str,
    fmt: ExportFormat,
    *,
    exporter: Actor,
    exported_at: datetime,
    programs: ProgramCatalog | None = None,
    patient_system: str = fhir.CLIENT_SYSTEM,
) -> str:
    """Read the episode's stream and render it; raise EpisodeNotInStore if it has none."""
    stored = await store.read_stream(episode_id)
    if not stored:
        raise EpisodeNotInStore(episode_id)
    return render(
        stored,
        fmt,
        exporter=exporter,
        exported_at=exported_at,
        aftercare_status=aftercare_status(stored, programs),
        patient_system=patient_system,
    )
