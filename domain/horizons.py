"""How far from the time of decision each kind of date in a command may lie.

The command types keep every moment within years the servers can represent
(`domain.vocabulary.Moment`); these horizons are the clinical bounds, judged against
the decision's own time (`em.now`, the workflow's clock: the domain never reads one).
A date beyond its horizon is nearly always a mistyped year, and accepting it would
leave a session nobody can attend, a consent that outlives its purpose or an
authorization that covers a decade.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.errors import InvalidCommand

_YEAR = timedelta(days=365)


@dataclass(frozen=True)
class Horizon:
    """The window around now, in whole years either way, in which one kind of date is
    plausible."""

    what: str
    years_back: int
    years_ahead: int

    def check(self, now: datetime, moment: datetime, field: str) -> None:
        """Raise `InvalidCommand` if `moment` lies outside the window around `now`."""
        if now - self.years_back * _YEAR <= moment <= now + self.years_ahead * _YEAR:
            return
        side = "before" if moment < now else "after"
        raise InvalidCommand(
            f"{field} {moment.isoformat()} is too far {side} now ({now.date().isoformat()}): "
            f"{self.what} may lie at most {_years(self.years_back)} back and "
            f"{_years(self.years_ahead)} ahead; check the date, the year especially"
        )


def _years(count: int) -> str:
    return "1 year" if count == 1 else f"{count} years"


SESSION = Horizon("a session's start", years_back=1, years_ahead=1)
"""Scheduling or moving a session. Back a year: a session held but entered late is still
recorded, within the longest timely-filing limit payers commonly set (90 days to a year).
Ahead a year: an IOP runs for weeks and its aftercare is outpatient care, so nothing in
the program is booked further out."""

CONSENT_EXPIRY = Horizon("a consent's expiry", years_back=0, years_ahead=2)
"""A consent to disclose (42 CFR Part 2) must last no longer than reasonably necessary:
two years covers the program and a year of aftercare check-ins. An expiry in the past is
refused by the consent rule itself, with its own message."""

AUTHORIZATION = Horizon("a payer authorization's dates", years_back=1, years_ahead=2)
"""A payer authorization's start and end. Back a year: retroactive authorizations are
granted for recent care. Ahead two years: authorizations run for weeks or months, an
annual one at most, so an end further out is a typo."""
