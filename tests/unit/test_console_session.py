"""The console's session cookie and its times in the clinic's words (no servers)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from api.auth import User
from api.console.routes import humane_time
from api.console.session import Sessions
from domain.actors import Role

KEY = b"k" * 32
CLINICIAN = User(user_id="cal.clinician", role=Role.CLINICIAN, programs=("adult-iop",))


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_given_a_session_when_its_cookie_is_read_back_then_it_names_the_same_user() -> None:
    sessions = Sessions(KEY)
    session = sessions.begin(CLINICIAN)

    read = sessions.decode(sessions.encode(session))

    assert read is not None
    assert read.user == CLINICIAN
    assert sessions.csrf_ok(read, session.csrf)
    assert not sessions.csrf_ok(read, "guess")
    assert not sessions.csrf_ok(read, None)


def test_given_an_altered_cookie_or_another_key_then_there_is_no_session() -> None:
    sessions = Sessions(KEY)
    cookie = sessions.encode(sessions.begin(CLINICIAN))
    payload, _, mac = cookie.rpartition(".")
    forged = Sessions(b"x" * 32).encode(
        sessions.begin(CLINICIAN.model_copy(update={"role": Role.SUPERVISOR}))
    )

    assert sessions.decode(payload[:-2] + "AA." + mac) is None
    assert sessions.decode(forged) is None
    assert sessions.decode("") is None
    assert sessions.decode("no-dot") is None


def test_given_an_idle_session_when_read_after_the_timeout_then_it_has_ended() -> None:
    clock = Clock()
    sessions = Sessions(KEY, idle_s=60 * 30, clock=clock)
    cookie = sessions.encode(sessions.begin(CLINICIAN))

    clock.now += 60 * 29
    assert sessions.decode(cookie) is not None
    clock.now += 60 * 2
    assert sessions.decode(cookie) is None


def test_given_a_used_session_then_its_last_use_moves_but_not_past_its_lifetime() -> None:
    clock = Clock()
    sessions = Sessions(KEY, idle_s=600, lifetime_s=3600, clock=clock)
    session = sessions.begin(CLINICIAN)
    assert sessions.touched(session) is None  # just begun: nothing to write

    for _ in range(7):
        clock.now += 500
        touched = sessions.touched(session)
        assert touched is not None
        session = touched
    # Used every 500 s, never idle, but begun 3,500 s ago: still within its lifetime...
    assert sessions.decode(sessions.encode(session)) is not None
    clock.now += 200
    # ...and past it now.
    assert sessions.decode(sessions.encode(session)) is None


def test_given_a_short_secret_then_sessions_refuse_to_sign() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Sessions(b"short")


NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)  # a Monday; 10:00 in New York


@pytest.mark.parametrize(
    ("moment", "said"),
    [
        (datetime(2026, 11, 30, 19, 0, tzinfo=UTC), "today 14:00"),
        (datetime(2026, 12, 1, 15, 0, tzinfo=UTC), "tomorrow 10:00"),
        (datetime(2026, 11, 29, 14, 30, tzinfo=UTC), "yesterday 09:30"),
        (datetime(2026, 12, 3, 15, 0, tzinfo=UTC), "Thu 10:00"),
        (datetime(2026, 12, 24, 15, 0, tzinfo=UTC), "24 Dec 2026 10:00"),
        # 03:00 UTC on the 1st is still the 30th, 22:00, on the clinic's clock.
        (datetime(2026, 12, 1, 3, 0, tzinfo=UTC), "today 22:00"),
    ],
)
def test_given_a_moment_then_it_reads_in_the_clinics_local_words(
    moment: datetime, said: str
) -> None:
    assert humane_time(moment, "America/New_York", NOW) == said


def test_given_no_moment_then_a_dash() -> None:
    assert humane_time(None, "UTC", NOW) == "—"
