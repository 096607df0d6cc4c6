"""What the projector sends and remembers of an episode's read-model rows: the document
`project_episode` reads, and the digests that say which rows changed."""

from __future__ import annotations

import json

from domain_scenario import DAY, T0, Episode

from store.projections import _changes, _digests, _document, _rows


def _episode() -> Episode:
    ep = Episode().in_program().session("s1", T0 + DAY).session("s2", T0 + 2 * DAY)
    ep.now = T0 + 3 * DAY
    ep.attendance("s1", "attended")
    return ep


def test_a_document_with_the_state_holds_the_rows_and_the_state_as_json() -> None:
    ep = _episode()
    rows = _rows(ep.s, ep.now)
    document = json.loads(_document(rows, ep.s))
    assert document == {"state": ep.s.model_dump(mode="json"), **json.loads(json.dumps(rows))}


def test_a_document_without_rows_may_still_carry_the_state() -> None:
    ep = _episode()
    assert json.loads(_document({}, ep.s)) == {"state": ep.s.model_dump(mode="json")}
    assert json.loads(_document({}, None)) == {}


def test_only_the_rows_an_event_changed_are_sent_again() -> None:
    ep = _episode()
    before = _digests(_rows(ep.s, ep.now))
    ep.attendance("s2", "attended")
    rows = _rows(ep.s, ep.now)
    changes = _changes(before, _digests(rows), rows)
    sessions = changes["upsert"]["console_sessions"]
    assert [row["session_id"] for row in sessions] == ["s2"]
    assert "caseload" not in changes.get("upsert", {})


def test_rows_with_lists_among_their_values_have_digests_that_follow_the_lists() -> None:
    row = {"episode_id": "ep-1", "task_id": "t1", "notify": ["primary_clinician"]}
    changed = {**row, "notify": ["primary_clinician", "supervisor"]}
    digests = _digests({"open_tasks": [row]})["open_tasks"]
    assert digests != _digests({"open_tasks": [changed]})["open_tasks"]
    assert digests == _digests({"open_tasks": [dict(row)]})["open_tasks"]
