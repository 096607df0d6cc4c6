"""How long a running projector waits between steps (`store.projections.pause_after`)."""

from __future__ import annotations

import pytest

from store.projections import (
    PROJECTOR_BATCH,
    PROJECTOR_BUSY_EVENTS,
    PROJECTOR_BUSY_S,
    PROJECTOR_IDLE_S,
    PROJECTOR_LISTENING_PAUSE_S,
    pause_after,
)


def test_after_a_whole_batch_the_next_step_follows_at_once() -> None:
    assert pause_after(PROJECTOR_BATCH, PROJECTOR_BATCH) == 0.0


@pytest.mark.parametrize("folded", [PROJECTOR_BUSY_EVENTS, PROJECTOR_BATCH - 1])
def test_after_a_busy_step_it_waits_so_more_events_share_the_next(folded: int) -> None:
    assert pause_after(folded, PROJECTOR_BATCH) == PROJECTOR_BUSY_S
    assert PROJECTOR_BUSY_S > PROJECTOR_IDLE_S


@pytest.mark.parametrize("folded", [0, 1, PROJECTOR_BUSY_EVENTS - 1, None])
def test_after_an_idle_or_light_step_or_a_held_lock_it_looks_again_soon(
    folded: int | None,
) -> None:
    assert pause_after(folded, PROJECTOR_BATCH) == PROJECTOR_IDLE_S


@pytest.mark.parametrize("folded", [0, 1, PROJECTOR_BUSY_EVENTS, PROJECTOR_BATCH - 1, None])
def test_given_readers_can_wake_it_when_a_step_folds_less_than_a_batch_then_it_waits_longer(
    folded: int | None,
) -> None:
    assert pause_after(folded, PROJECTOR_BATCH, listening=True) == PROJECTOR_LISTENING_PAUSE_S
    assert max(PROJECTOR_IDLE_S, PROJECTOR_BUSY_S) < PROJECTOR_LISTENING_PAUSE_S


def test_given_readers_can_wake_it_after_a_whole_batch_the_next_step_still_follows_at_once() -> (
    None
):
    assert pause_after(PROJECTOR_BATCH, PROJECTOR_BATCH, listening=True) == 0.0
