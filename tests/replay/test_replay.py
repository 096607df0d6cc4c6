"""Every committed history replays against the current workflow code.

A failure here means a change would break running episodes: guard it with
`workflow.patched(...)` (see docs/versioning.md) instead of editing the history.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testing.payload_keys import TEST_CONVERTER
from workers.replay import load_history, replay

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_committed() -> None:
    assert len(HISTORIES) >= 1, "run `make record-histories` and commit tests/replay/histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_history_replays_without_nondeterminism(path: Path) -> None:
    history = load_history(path)

    results = await replay([history], data_converter=TEST_CONVERTER)

    assert results == {history.run_id: None}
