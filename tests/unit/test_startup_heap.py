"""A long-running role's starting objects, set aside from the garbage collector
(`workers.heap.set_aside_live_objects`)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from workers.heap import set_aside_live_objects


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    yield
    gc.unfreeze()


def test_what_starting_left_behind_is_collected_before_the_rest_is_set_aside() -> None:
    left_behind = Node()
    gone = weakref.ref(left_behind)
    del left_behind

    set_aside_live_objects()

    assert gone() is None


def test_the_objects_alive_at_start_are_set_aside_and_counted() -> None:
    kept = Node()

    count = set_aside_live_objects()

    # Other threads of the test session may free a set-aside object meanwhile; none can
    # add one.
    assert 0 < gc.get_freeze_count() <= count < gc.get_freeze_count() + 100
    assert not any(obj is kept for obj in gc.get_objects())


def test_cycles_made_afterwards_are_still_collected() -> None:
    set_aside_live_objects()
    later = Node()
    gone = weakref.ref(later)
    del later

    gc.collect()

    assert gone() is None
