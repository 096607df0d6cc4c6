"""How a failed append becomes the failure of the one command that asked for it."""

from __future__ import annotations

from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

from workflows.care_pathway import append_failure


def _activity_error(cause: BaseException) -> ActivityError:
    err = ActivityError(
        "activity failed",
        scheduled_event_id=1,
        started_event_id=2,
        identity="worker",
        activity_type="append_events",
        activity_id="1",
        retry_state=RetryState.NON_RETRYABLE_FAILURE,
    )
    err.__cause__ = cause
    return err


def test_a_refusal_by_the_store_keeps_its_type_and_message() -> None:
    refused = ApplicationError("seq 7 would leave a gap", type="AppendConflict", non_retryable=True)

    failure = append_failure("ep-1", _activity_error(refused))

    assert (failure.type, failure.message, failure.non_retryable) == (
        "AppendConflict",
        "seq 7 would leave a gap",
        True,
    )


def test_an_append_out_of_time_is_the_store_unavailable_and_says_to_retry() -> None:
    timeout = TimeoutError(
        "activity timeout", type=TimeoutType.SCHEDULE_TO_CLOSE, last_heartbeat_details=()
    )
    timeout.__cause__ = ApplicationError("lost the connection to PostgreSQL", type="Lost")

    failure = append_failure("ep-1", _activity_error(timeout))

    assert failure.type == "DatabaseUnavailable"
    assert failure.non_retryable
    assert "lost the connection to PostgreSQL" in failure.message
    assert "same Idempotency-Key" in failure.message
