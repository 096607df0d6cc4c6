"""Run the escalation drill against a running `carepath up` and print what happened when.

    make drill                      # against http://127.0.0.1:8000 and .carepath/
    .venv/bin/python -m testing.drill --api-url URL --data-dir DIR

It refers a client to the `drill` program (programs/drill.yaml: adult rules, timers in
seconds, not clinical), takes the episode to the program with the demo users' tokens,
schedules three short sessions a few seconds ahead and records none of them. Then it
watches the episode: every task opened, superseded or resolved, and every staff
notification, with the seconds since the sessions were scheduled, until the top rung
of the ladder is open (or `--timeout` seconds pass).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from api.auth import DEMO_TOKENS_FILE, demo_tokens
from domain.actors import Role
from domain.commands_intake import RecordAssessment, RecordScreening
from domain.commands_plan import RecordTreatmentPlan

# Sessions of 18 s, 20 s apart (the drill's shortest session is 15 s): each is a no-show
# 10 s after its end.
SESSION_HOURS = 0.005
SESSION_GAP = timedelta(seconds=20)
FIRST_START = timedelta(seconds=5)


class Drill:
    def __init__(self, api_url: str, data_dir: Path) -> None:
        tokens = demo_tokens(data_dir)
        missing = [r.value for r in (Role.INTAKE_COORDINATOR, Role.CLINICIAN) if r not in tokens]
        if missing:
            sys.exit(
                f"no demo token for {', '.join(missing)} in {data_dir / DEMO_TOKENS_FILE} "
                "(`carepath up` writes it when it creates the users file)"
            )
        self.tokens = tokens
        self.http = httpx.Client(base_url=api_url, timeout=30)

    def send(self, role: Role, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"}
        if method == "POST":
            headers["Idempotency-Key"] = f"drill-{uuid.uuid4()}"
        answer = self.http.request(method, path, json=body, headers=headers)
        if answer.status_code >= 400:
            sys.exit(f"{method} {path}: {answer.status_code} {answer.text}")
        return answer.json()

    def prepare(self) -> tuple[str, datetime]:
        """An episode in the drill program, admitted, planned, with three sessions ahead."""
        intake, clinician = Role.INTAKE_COORDINATOR, Role.CLINICIAN
        referral = {"client_ref": "DRILL-0001", "program_id": "drill", "referral_source": "self"}
        episode = self.send(intake, "POST", "/episodes", referral)["episode_id"]
        base = f"/episodes/{episode}"
        self.send(intake, "POST", f"{base}/screening/start", {})
        self.send(intake, "POST", f"{base}/screening", RecordScreening.endpoint.example)
        self.send(clinician, "POST", f"{base}/assessment", RecordAssessment.endpoint.example)
        self.send(clinician, "POST", f"{base}/admission", {})
        self.send(clinician, "POST", f"{base}/treatment-plan", RecordTreatmentPlan.endpoint.example)
        scheduled_at = datetime.now(UTC)
        for number in range(3):
            starts = scheduled_at + FIRST_START + number * SESSION_GAP
            session = {
                "session_id": f"drill-{number + 1}",
                "kind": "group_process",
                "starts_at": starts.isoformat(),
                "hours": SESSION_HOURS,
            }
            self.send(intake, "POST", f"{base}/sessions", session)
        return episode, scheduled_at

    def watch(self, episode: str, since: datetime, timeout: float, top: int) -> bool:
        seen: set[tuple[str, str]] = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.send(Role.CLINICIAN, "GET", f"/episodes/{episode}")["state"]
            events = self.send(Role.CLINICIAN, "GET", f"/episodes/{episode}/events")
            for stored in events["events"]:
                event = stored["payload"]
                key = (str(stored["seq"]), stored["type"])
                if key in seen or not _worth_showing(event):
                    continue
                seen.add(key)
                at = datetime.fromisoformat(stored["occurred_at"])
                print(f"{(at - since).total_seconds():7.1f} s  {_describe(event)}")
            open_tasks = [t for t in state.get("tasks", ()) if _open(t)]
            if any(t["level"] >= top for t in open_tasks):
                levels = sorted(t["level"] for t in open_tasks)
                print(f"top rung open after {(datetime.now(UTC) - since).total_seconds():.1f} s;")
                print(f"open tasks now: levels {levels}")
                return True
            time.sleep(1)
        return False


def _open(task: dict[str, Any]) -> bool:
    return not task.get("resolved") and not task.get("superseded_by")


def _worth_showing(event: dict[str, Any]) -> bool:
    return event["type"] in {
        "attendance_recorded",
        "escalation_raised",
        "escalation_task_overdue",
        "escalation_task_superseded",
        "task_resolved",
    }


def _describe(event: dict[str, Any]) -> str:
    kind = event["type"]
    if kind == "attendance_recorded":
        return f"{event['session_id']}: {event['status']}"
    if kind == "escalation_raised":
        notify = ", ".join(event.get("notify", ()))
        return (
            f"level {event['level']} {event['task_kind']} opened ({event['task_id']}), "
            f"notifies {notify}"
        )
    if kind == "escalation_task_superseded":
        return f"{event['task_id']} superseded by {event.get('superseded_by')}"
    return f"{kind} {event.get('task_id', '')}".rstrip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api-url", default="http://127.0.0.1:8000")
    parser.add_argument("--data-dir", type=Path, default=Path(".carepath"))
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args(argv)
    drill = Drill(args.api_url, args.data_dir)
    episode, since = drill.prepare()
    print(f"episode {episode}: three sessions scheduled at {since:%H:%M:%S} UTC, none recorded")
    reached = drill.watch(episode, since, args.timeout, top=4)
    if not reached:
        print(f"the top rung was not reached within {args.timeout:.0f} s")
    return 0 if reached else 1


if __name__ == "__main__":
    raise SystemExit(main())
