"""The auditor pages' pure parts: the replay's side by side, the moment a form names, and
the background verification's bookkeeping (no Temporal, no PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from api.console.audit import VerifyJobs, parse_moment, side_by_side
from audit.verify import Progress, VerifyReport
from domain.decider import fold
from testing.sample_streams import episode_events

ZONE = ZoneInfo("America/New_York")


def _changed(then_count: int, now_count: int) -> dict[str, tuple[str, str]]:
    events = episode_events("ep-side", sessions=3)
    rows = side_by_side(fold(events[:then_count]), fold(events[:now_count]), ZONE)
    return {r.label: (r.then, r.now) for r in rows if r.changed}


class TestSideBySide:
    def test_given_a_state_before_admission_and_after_attendance_then_stage_sessions_and_attendance_are_changed(
        self,
    ) -> None:
        changed = _changed(3, 13)

        assert changed["Stage"] == ("assessment", "in program")
        assert changed["Sessions scheduled"] == ("0", "3")
        assert changed["Treatment plan revision"] == ("0", "1")
        assert "Events folded" in changed

    def test_given_the_same_events_then_nothing_is_changed(self) -> None:
        assert _changed(13, 13) == {}

    def test_given_a_moment_before_the_referral_then_the_stage_says_not_referred_yet(
        self,
    ) -> None:
        changed = _changed(0, 1)

        assert changed["Stage"] == ("not referred yet", "referred")


class TestParseMoment:
    def test_given_a_local_date_time_then_it_is_on_the_clinics_clock(self) -> None:
        assert parse_moment("2026-03-02T09:30", ZONE) == datetime(2026, 3, 2, 14, 30, tzinfo=UTC)

    def test_given_an_iso_time_with_an_offset_then_the_offset_is_kept(self) -> None:
        assert parse_moment("2026-03-02T09:30:00Z", ZONE) == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)

    def test_given_words_then_it_is_refused(self) -> None:
        with pytest.raises(ValueError, match="Invalid isoformat"):
            parse_moment("last tuesday", ZONE)


class TestVerifyJobs:
    async def test_given_a_run_under_way_when_another_is_started_then_the_same_run_is_returned_and_its_progress_shows(
        self,
    ) -> None:
        jobs = VerifyJobs()
        release = asyncio.Event()

        async def work(progress: Progress) -> VerifyReport:
            progress(1, 2)
            await release.wait()
            progress(2, 2)
            return VerifyReport(ok=True, streams=())

        first = jobs.start("ada.auditor", work)
        await asyncio.sleep(0)
        second = jobs.start("ada.auditor", work)

        assert second is first
        assert (first.running, first.done, first.total) == (True, 1, 2)
        release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert not first.running
        assert first.report is not None
        assert first.report.ok
        assert jobs.latest() is first

    async def test_given_a_run_that_fails_then_it_ends_with_an_error_not_a_report(
        self,
    ) -> None:
        jobs = VerifyJobs()

        async def work(progress: Progress) -> VerifyReport:
            raise OSError("disk gone")

        job = jobs.start("ada.auditor", work)
        for _ in range(5):
            await asyncio.sleep(0)

        assert (job.running, job.report) == (False, None)
        assert job.error is not None
        assert "OSError" in job.error
