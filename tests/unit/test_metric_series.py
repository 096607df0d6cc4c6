"""CarePath's metrics without servers: what counts, how answers are classified, and the
committed Grafana dashboard against the metrics that exist."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.exceptions import RequestValidationError
from prometheus_client import REGISTRY, CollectorRegistry, Histogram
from structlog.testing import capture_logs
from temporalio.testing import ActivityEnvironment

import api.metrics
import store.metrics
from activities.channels import NotificationRejected
from activities.metrics import count_written
from activities.notifications import Notification, NotificationActivities
from api.metrics import measured_command, problem_of
from api.problems import ProblemError
from store.errors import DatabaseUnavailable
from store.metrics import observe_all, observe_projection_lag
from testing.sample_streams import episode_events
from workflows.client import CommandRejected
from workflows.messages import NotifyInput

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "carepath.json"
_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def carepath_metric_names() -> set[str]:
    """Every series name CarePath's registry can expose (histogram parts included)."""
    assert api.metrics
    assert store.metrics
    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.name.startswith("carepath_"):
            names.add(family.name)
            names.update(family.name + s for s in ("_total", *_SUFFIXES))
    return names


class TestEventsCounted:
    def test_given_a_batch_when_all_of_it_is_written_then_escalations_by_level_and_no_shows_count(
        self,
    ) -> None:
        events = episode_events("ep-count", sessions=10)
        before = (
            value("carepath_escalations_opened_total", level="1"),
            value("carepath_escalations_opened_total", level="4"),
            value("carepath_no_shows_recorded_total"),
        )

        count_written(events, len(events))

        after = (
            value("carepath_escalations_opened_total", level="1"),
            value("carepath_escalations_opened_total", level="4"),
            value("carepath_no_shows_recorded_total"),
        )
        assert [b - a for a, b in zip(before, after, strict=True)] == [2, 2, 2]

    def test_given_a_batch_partly_stored_before_when_counted_then_only_its_new_tail_counts(
        self,
    ) -> None:
        events = episode_events("ep-tail", sessions=10)
        # seq 15 raises level 1 and seq 17 is a no-show; only the last three are new.
        tail = events[14:17]
        level_1 = value("carepath_escalations_opened_total", level="1")
        no_shows = value("carepath_no_shows_recorded_total")

        count_written(tail, 1)

        assert value("carepath_escalations_opened_total", level="1") == level_1
        assert value("carepath_no_shows_recorded_total") == no_shows + 1

    def test_given_a_re_append_when_nothing_was_written_then_nothing_counts(self) -> None:
        events = episode_events("ep-none", sessions=10)
        no_shows = value("carepath_no_shows_recorded_total")

        count_written(events, 0)

        assert value("carepath_no_shows_recorded_total") == no_shows


class TestProjectionLag:
    def test_given_folded_events_when_observed_then_each_lag_is_its_age_and_never_negative(
        self,
    ) -> None:
        now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
        count = value("carepath_projection_lag_seconds_count")
        total = value("carepath_projection_lag_seconds_sum")

        observe_projection_lag([now - timedelta(seconds=2), now + timedelta(seconds=1)], now)

        assert value("carepath_projection_lag_seconds_count") == count + 2
        assert value("carepath_projection_lag_seconds_sum") == pytest.approx(total + 2.0)

    def test_given_many_amounts_when_observed_at_once_then_the_histogram_equals_one_observed_one_by_one(
        self,
    ) -> None:
        buckets = (0.01, 0.25, 1.0, 60.0)
        # On a bound, between bounds, below the first and above the last.
        amounts = [0.0, 0.01, 0.0100001, 0.2, 0.25, 0.25, 0.9, 1.0, 59.0, 61.0, 500.0]
        at_once, one_by_one = CollectorRegistry(), CollectorRegistry()
        first = Histogram("lag_seconds", "lag", buckets=buckets, registry=at_once)
        second = Histogram("lag_seconds", "lag", buckets=buckets, registry=one_by_one)

        observe_all(first, amounts)
        observe_all(first, [])
        for amount in amounts:
            second.observe(amount)

        def samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
            return {
                (s.name, s.labels.get("le", "")): s.value
                for family in registry.collect()
                for s in family.samples
                if not s.name.endswith("_created")
            }

        expected = samples(one_by_one)
        got = samples(at_once)
        assert got.pop(("lag_seconds_sum", "")) == pytest.approx(
            expected.pop(("lag_seconds_sum", ""))
        )
        assert got == expected
        assert expected[("lag_seconds_bucket", "0.25")] == 6
        assert expected[("lag_seconds_count", "")] == len(amounts)


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


class TestCommandOutcomes:
    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (CommandRejected("EpisodeClosed", "closed"), ("EpisodeClosed", 409)),
            (CommandRejected("SessionOverlaps", "overlap"), ("SessionOverlaps", 409)),
            (CommandRejected("bad label; with spaces", "x"), ("Other", 409)),
            (ProblemError("AccessDenied", "no", 403), ("AccessDenied", 403)),
            (RequestValidationError([{"type": "json_invalid"}]), ("MalformedJson", 400)),
            (RequestValidationError([{"type": "missing"}]), ("ValidationFailed", 422)),
            (DatabaseUnavailable("down"), ("DatabaseUnavailable", 503)),
            (ConnectionResetError(), ("DatabaseUnavailable", 503)),
            (RuntimeError("boom"), ("InternalError", 500)),
        ],
    )
    def test_given_an_error_when_classified_then_it_is_the_problem_the_api_answers(
        self, error: Exception, expected: tuple[str, int]
    ) -> None:
        assert problem_of(error) == expected

    async def test_given_commands_when_answered_then_they_count_by_type_outcome_and_code(
        self,
    ) -> None:
        kind = "record_attendance"
        labels = {"type": kind}
        applied = value("carepath_commands_total", **labels, outcome="applied", code="")
        refused = value(
            "carepath_commands_total", **labels, outcome="refused", code="EpisodeClosed"
        )
        failed = value("carepath_commands_total", **labels, outcome="failed", code="InternalError")
        timed = value("carepath_command_duration_seconds_count", **labels, outcome="applied")

        async def ok() -> _Response:
            return _Response(200)

        async def closed() -> _Response:
            raise CommandRejected("EpisodeClosed", "closed")

        async def broken() -> _Response:
            raise RuntimeError("boom")

        await measured_command(kind, ok)  # type: ignore[arg-type]
        with pytest.raises(CommandRejected):
            await measured_command(kind, closed)  # type: ignore[arg-type]
        with pytest.raises(RuntimeError):
            await measured_command(kind, broken)  # type: ignore[arg-type]

        assert value("carepath_commands_total", **labels, outcome="applied", code="") == applied + 1
        assert (
            value("carepath_commands_total", **labels, outcome="refused", code="EpisodeClosed")
            == refused + 1
        )
        assert (
            value("carepath_commands_total", **labels, outcome="failed", code="InternalError")
            == failed + 1
        )
        assert value("carepath_command_duration_seconds_count", **labels, outcome="applied") == (
            timed + 1
        )


class _Refusing:
    name = "webhook"

    async def send(self, note: Notification) -> None:
        raise NotificationRejected("the receiver answered 400")


class _Down:
    name = "smtp"

    async def send(self, note: Notification) -> None:
        raise OSError("connection refused")


class TestNotificationsCounted:
    @staticmethod
    def review_due() -> NotifyInput:
        events = episode_events("ep-notes", sessions=10)
        return NotifyInput(
            episode_id="ep-notes",
            primary_clinician="cal.clinician",
            events=tuple(e for e in events if e.type == "plan_review_due_soon"),
        )

    async def test_given_a_delivered_notice_when_sent_then_it_counts_for_its_channel(
        self,
    ) -> None:
        sent = value("carepath_notifications_sent_total", channel="log")

        with capture_logs():
            result = await ActivityEnvironment().run(
                NotificationActivities().send_notifications, self.review_due()
            )

        assert value("carepath_notifications_sent_total", channel="log") == sent + result.sent
        assert result.sent >= 1

    async def test_given_a_refusing_channel_when_sent_then_it_counts_as_rejected(self) -> None:
        rejected = value("carepath_notifications_failed_total", channel="webhook", kind="rejected")
        acts = NotificationActivities(channel=_Refusing())  # type: ignore[arg-type]

        with pytest.raises(Exception, match="refused"):
            await ActivityEnvironment().run(acts.send_notifications, self.review_due())

        assert (
            value("carepath_notifications_failed_total", channel="webhook", kind="rejected")
            > rejected
        )

    async def test_given_an_unreachable_channel_when_sent_then_it_counts_as_an_error(
        self,
    ) -> None:
        errors = value("carepath_notifications_failed_total", channel="smtp", kind="error")
        acts = NotificationActivities(channel=_Down())  # type: ignore[arg-type]

        with pytest.raises(OSError, match="connection refused"):
            await ActivityEnvironment().run(acts.send_notifications, self.review_due())

        assert value("carepath_notifications_failed_total", channel="smtp", kind="error") == (
            errors + 1
        )


class TestDashboard:
    def test_given_the_committed_dashboard_when_parsed_then_every_carepath_metric_it_queries_exists(
        self,
    ) -> None:
        dashboard = json.loads(DASHBOARD.read_text())
        exprs = [
            target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
        ]
        queried = {m for e in exprs for m in re.findall(r"\bcarepath_[a-z_]+", e)}

        assert exprs
        assert queried
        assert queried <= carepath_metric_names(), queried - carepath_metric_names()
        for name in (
            "commands_total",
            "command_duration_seconds",
            "append_duration_seconds",
            "append_batch_events",
            "projection_lag_seconds",
            "escalations_opened_total",
            "no_shows_recorded_total",
            "open_tasks",
            "notifications_sent_total",
            "notifications_failed_total",
        ):
            assert any(f"carepath_{name}" in e for e in exprs), name

    def test_given_the_dashboard_when_read_then_it_uses_the_prometheus_datasource_and_sdk_series(
        self,
    ) -> None:
        dashboard = json.loads(DASHBOARD.read_text())
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        exprs = " ".join(t["expr"] for p in panels for t in p["targets"])

        assert {p["datasource"]["uid"] for p in panels} == {"prometheus"}
        assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
        for sdk in (
            "workflow_task_execution_latency",
            "activity_execution_latency",
            "sticky_cache",
        ):
            assert f"temporal_{sdk}" in exprs, sdk
