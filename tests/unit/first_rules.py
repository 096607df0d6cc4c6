"""Episodes admitted under the first revision of the pathway's rules, as recorded
histories were: the decider must keep treating them exactly as it did then."""

from __future__ import annotations

from datetime import datetime

from domain_scenario import Episode

from domain.decider import DecisionContext
from domain.vocabulary import FIRST_RULES


class FirstRulesEpisode(Episode):
    """An `Episode` whose admission records the first revision of the rules."""

    def ctx(self, now: datetime | None = None) -> DecisionContext:
        return DecisionContext(
            episode_id=self.episode_id,
            now=now or self.now,
            programs=self.catalog,
            rules_revision=FIRST_RULES,
        )
