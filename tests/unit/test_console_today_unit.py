"""The Today page's and intake board's pure helpers, and the page policy's fast scan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.console.today import humane_wait, local_day_bounds, waiting_for
from api.limits import _PageSources, _source_tags, content_security_policy

NOW = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)


class TestHumaneWait:
    def test_given_waits_of_every_size_then_each_is_said_in_its_own_unit(self) -> None:
        said = [
            humane_wait(NOW - delta, NOW)
            for delta in (
                timedelta(seconds=20),
                timedelta(minutes=25),
                timedelta(hours=5),
                timedelta(days=3),
                timedelta(days=20),
            )
        ]

        assert said == ["under a minute", "25 min", "5 h", "3 days", "2 weeks"]

    def test_given_no_moment_then_a_dash(self) -> None:
        assert humane_wait(None, NOW) == "—"


class TestLocalDay:
    def test_given_the_day_the_clocks_change_then_the_local_day_has_23_hours(self) -> None:
        start, end = local_day_bounds("Europe/Berlin", NOW)

        assert start == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
        assert end - start == timedelta(hours=23)

    def test_given_a_moment_after_local_midnight_then_the_day_is_the_clinics(self) -> None:
        start, _ = local_day_bounds("America/New_York", datetime(2026, 1, 6, 3, 0, tzinfo=UTC))

        assert start == datetime(2026, 1, 5, 5, 0, tzinfo=UTC)


class TestWaitingFor:
    def row(self, stage: str, assessed: bool = False) -> dict[str, object]:
        return {
            "stage": stage,
            "assessed": assessed,
            "referred_at": NOW - timedelta(days=3),
            "admitted_at": NOW - timedelta(days=1) if stage == "treatment_planning" else None,
            "last_event_at": NOW - timedelta(hours=2),
        }

    def test_given_each_intake_stage_then_it_names_the_next_step_and_since_when(self) -> None:
        said = [
            waiting_for(self.row("referred")),
            waiting_for(self.row("screening")),
            waiting_for(self.row("assessment")),
            waiting_for(self.row("assessment", assessed=True)),
            waiting_for(self.row("treatment_planning")),
        ]

        assert said == [
            ("screening to start", NOW - timedelta(days=3)),
            ("screening result", NOW - timedelta(hours=2)),
            ("assessment", NOW - timedelta(hours=2)),
            ("admission decision", NOW - timedelta(hours=2)),
            ("treatment plan", NOW - timedelta(days=1)),
        ]


class TestPagePolicyScan:
    PAGE = (
        "<!doctype html><html><head><link rel='stylesheet' href='/static/c.css'>"
        "<script src='/static/live.js'></script><script>let a = '<b>';</script>"
        "<!-- <script src='https://commented.example/x.js'></script> -->"
        "<link rel=icon href='data:,'></head><body>"
        + "<tr><td><input name=x><label>y</label></td></tr>" * 300
        + "<IMG SRC='https://img.example/a.png'></body></html>"
    )

    def test_given_a_long_page_then_the_scan_finds_what_a_full_parse_finds(self) -> None:
        full, fast = _PageSources(), _PageSources()
        full.feed(self.PAGE)
        fast.feed(_source_tags(self.PAGE))

        assert (fast.scripts, fast.styles, fast.images, fast.inline_scripts) == (
            full.scripts,
            full.styles,
            full.images,
            full.inline_scripts,
        )
        policy = content_security_policy(self.PAGE, console=True)
        assert "commented.example" not in policy
        assert "https://img.example/a.png" in policy
