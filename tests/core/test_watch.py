"""core.watch.poll_stack: the one poll step of the sensor and the trigger, without Airflow."""

from __future__ import annotations

import re
from typing import Any

import pytest
from botocore.stub import Stubber

from tdv_airflow.core.stack_events import EventTail
from tdv_airflow.core.stacks import FINGERPRINT_TAG
from tdv_airflow.core.watch import StackPoll, check_fingerprint, poll_stack
from tdv_airflow.exceptions import InvalidInputError, StackFailedError, StackNotFoundError
from testkit import stubbed_stacks
from testkit.held_stack import create_held_stack, release


def test_an_absent_stack_is_missing_within_the_grace_period_then_not_found(cfn: Any) -> None:
    waiting = poll_stack(cfn, "tdv-nowhere", None, waited=1.0, not_found_grace_period=5.0)
    assert (waiting.state, waiting.done, waiting.status, waiting.stack_id) == (
        "missing", False, None, None)
    waiting.raise_for_state()  # nothing to raise yet
    gone = poll_stack(cfn, "tdv-nowhere", None, waited=5.0, not_found_grace_period=5.0)
    assert (gone.state, gone.done) == ("not_found", True)
    assert gone.message == str(StackNotFoundError("tdv-nowhere"))
    with pytest.raises(StackNotFoundError, match="tdv-nowhere"):
        gone.raise_for_state()


def test_a_held_stack_is_in_progress_then_succeeds_with_the_sensor_contract(
        aws: Any, boto_session: Any, cfn: Any) -> None:
    stack_id = create_held_stack(boto_session, aws.endpoint_url, "tdv-held")
    tail = EventTail(cfn, "tdv-held")
    first = poll_stack(cfn, "tdv-held", tail, waited=0.0, not_found_grace_period=0.0)
    assert (first.state, first.status, first.stack_id, first.done) == (
        "in_progress", "CREATE_IN_PROGRESS", stack_id, False)
    assert first.result is None and first.error is None
    assert first.message == "stack 'tdv-held' is CREATE_IN_PROGRESS"
    release(aws.endpoint_url, stack_id)
    done = poll_stack(cfn, "tdv-held", tail, waited=1.0, not_found_grace_period=0.0)
    assert (done.state, done.done) == ("success", True)
    assert done.result == {
        "stack_name": "tdv-held", "stack_id": stack_id, "stack_status": "CREATE_COMPLETE",
        "api_name": "tdv-held-api", "api_endpoint": "https://tdv-held.example.com/prod/predict",
        "outputs": {"ApiName": "tdv-held-api",
                    "ApiEndpoint": "https://tdv-held.example.com/prod/predict"}}
    assert not set(first.events) & set(done.events), "an event was reported twice"


@pytest.mark.parametrize("status", ["CREATE_FAILED", "ROLLBACK_COMPLETE",
                                    "UPDATE_ROLLBACK_IN_PROGRESS", "DELETE_FAILED"])
def test_a_failed_stack_carries_status_reason_and_first_failed_resource(status: str) -> None:
    client = stubbed_stacks.client()
    with Stubber(client) as stubber:
        stubbed_stacks.stub_failure(stubber, status)
        poll = poll_stack(client, stubbed_stacks.STACK_NAME,
                          EventTail(client, stubbed_stacks.STACK_NAME),
                          waited=0.0, not_found_grace_period=0.0)
        stubber.assert_no_pending_responses()
    assert (poll.state, poll.done, poll.status) == ("failed", True, status)
    assert poll.error is not None
    assert poll.error["stack_name"] == stubbed_stacks.STACK_NAME
    assert poll.error["reason"] == stubbed_stacks.FAILED_REASON
    assert "PredictFunction (AWS::Lambda::Function) CREATE_FAILED" in str(
        poll.error["failed_event"])
    assert len(poll.events) == 4 and "User Initiated" in poll.events[0]
    with pytest.raises(StackFailedError) as caught:
        poll.raise_for_state()
    assert caught.value.status == status and str(caught.value) == poll.message


def test_a_poll_is_a_frozen_value() -> None:
    poll = StackPoll("missing", "s")
    with pytest.raises(AttributeError):
        poll.state = "success"  # type: ignore[misc]


SERVED = "a" * 64


@pytest.mark.parametrize("status", ["UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"])
def test_a_stack_rolled_back_to_the_wanted_state_is_a_success(status: str) -> None:
    client = stubbed_stacks.client()
    with Stubber(client) as stubber:
        stubber.add_response("describe_stacks", stubbed_stacks.stack(
            status, tags={FINGERPRINT_TAG: SERVED}))
        poll = poll_stack(client, stubbed_stacks.STACK_NAME, None, waited=0.0,
                          not_found_grace_period=0.0, expected_fingerprint=SERVED)
        stubber.assert_no_pending_responses()
    assert (poll.state, poll.done, poll.status, poll.error) == ("success", True, status, None)
    assert poll.result is not None and poll.result["stack_status"] == status
    assert poll.result["api_endpoint"].startswith("https://abc123.execute-api.")


@pytest.mark.parametrize("expected", [None, "b" * 64])
def test_a_stack_rolled_back_to_another_state_is_a_failure(expected: str | None) -> None:
    """No fingerprint, or the one of the update that rolled back (the stack carries the
    previous one): a failure, with the rollback's reason."""
    client = stubbed_stacks.client()
    with Stubber(client) as stubber:
        stubber.add_response("describe_stacks", stubbed_stacks.stack(
            "UPDATE_ROLLBACK_COMPLETE", tags={FINGERPRINT_TAG: SERVED}))
        stubber.add_response("describe_stack_events",
                             stubbed_stacks.failed_events("UPDATE_ROLLBACK_COMPLETE"))
        poll = poll_stack(client, stubbed_stacks.STACK_NAME, None, waited=0.0,
                          not_found_grace_period=0.0, expected_fingerprint=expected)
        stubber.assert_no_pending_responses()
    assert (poll.state, poll.status) == ("failed", "UPDATE_ROLLBACK_COMPLETE")
    assert "Unzipped size must be smaller" in str(poll.error)


@pytest.mark.parametrize("value", ["abc", "A" * 64, 42, "g" * 64])
def test_a_fingerprint_that_is_not_one_is_refused_naming_it(value: Any) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(repr(value))):
        check_fingerprint(value)
    assert check_fingerprint("") is None and check_fingerprint(None) is None
    assert check_fingerprint(SERVED) == SERVED
