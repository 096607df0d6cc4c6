"""The summaries an episode's history carries, and the worker's identity."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.deadlines import DEADLINE_RULES
from workers.worker import is_worker_on_host, worker_identity
from workflows.summaries import (
    append_summary,
    deadline_summary,
    deadline_words,
    episode_summary,
    notify_summary,
)

AT = datetime(2026, 1, 5, 20, tzinfo=UTC)


def test_given_a_pending_no_show_check_when_the_timer_is_summarised_then_it_names_the_session() -> (
    None
):
    pending = [
        ("session_no_show", AT, "s-3"),
        ("plan_review_reminder", AT + timedelta(days=9), None),
    ]

    assert deadline_summary(pending, AT) == "no-show check for session s-3"


def test_given_two_deadlines_at_the_same_moment_when_summarised_then_the_second_is_counted() -> (
    None
):
    pending = [("session_no_show", AT, "s-3"), ("task_due", AT, "task-7")]

    assert deadline_summary(pending, AT) == "no-show check for session s-3 (+1 more)"


def test_given_no_pending_item_at_the_deadline_when_summarised_then_it_says_next_deadline() -> None:
    assert (
        deadline_summary([("task_due", AT, "task-7")], AT + timedelta(hours=1)) == "next deadline"
    )


def test_given_every_deadline_kind_when_worded_then_each_has_its_own_words_without_placeholders() -> (
    None
):
    for rule in DEADLINE_RULES:
        for ref in ("ref-1", None):
            words = deadline_words(rule.kind, ref)
            assert words, rule.kind
            assert "{" not in words, words
            assert "_" not in words, words
    assert deadline_words("check_in_closes", "check-in-2") == "check-in-2 closes"
    assert deadline_words("plan_review_reminder", None) == "plan review due"
    assert deadline_words("a_new_kind", None) == "a new kind"


def test_given_event_counts_when_activities_are_summarised_then_they_say_how_many() -> None:
    assert append_summary(2) == "append 2 events"
    assert append_summary(1) == "append 1 event"
    assert append_summary(0) == "look up an applied command"
    assert notify_summary(2) == "notify 2 events"
    assert notify_summary(1) == "notify 1 event"


def test_given_an_episode_when_its_workflow_is_summarised_then_it_names_program_and_episode_only() -> (
    None
):
    assert episode_summary("adult-iop", "e-1") == "adult-iop episode e-1"
    assert (
        episode_summary("adult-iop", "e-2", readmission_of="e-1")
        == "adult-iop episode e-2, readmission of e-1"
    )


def test_given_a_worker_when_its_identity_is_built_then_it_names_role_host_and_process() -> None:
    assert worker_identity("vm-1", 6733) == "carepath-worker@vm-1:6733"


def test_given_poller_identities_when_the_health_check_looks_for_this_host_then_only_a_carepath_worker_here_counts() -> (
    None
):
    assert is_worker_on_host(worker_identity("vm-1", 6733), "vm-1")
    assert not is_worker_on_host(worker_identity("vm-2", 6733), "vm-1")
    assert not is_worker_on_host("6733@vm-1", "vm-1")  # the SDK's default identity
    assert not is_worker_on_host("carepath-worker@vm-10:1", "vm-1")
