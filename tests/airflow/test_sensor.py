"""StackStatusSensor and StackStatusTrigger: success, waiting, every failure state."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, TaskDeferred
from botocore.stub import Stubber

from tdv_airflow.exceptions import StackFailedError, StackNotFoundError, StackTimeoutError
from tdv_airflow.sensors import StackStatusSensor
from tdv_airflow.triggers import StackStatusTrigger
from tdv_airflow.triggers.deployment import result_from_event
from testkit import stubbed_stacks
from testkit.held_stack import create_held_stack, release

#: Every status that must fail the sensor at once.
FAILURE_STATES = [
    "CREATE_FAILED", "ROLLBACK_IN_PROGRESS", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED",
    "UPDATE_FAILED", "UPDATE_ROLLBACK_IN_PROGRESS", "UPDATE_ROLLBACK_FAILED",
    "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS", "UPDATE_ROLLBACK_COMPLETE",
    "DELETE_IN_PROGRESS", "DELETE_FAILED", "DELETE_COMPLETE", "IMPORT_ROLLBACK_IN_PROGRESS",
    "IMPORT_ROLLBACK_FAILED", "IMPORT_ROLLBACK_COMPLETE",
]
CONTRACT_KEYS = {"stack_name", "stack_id", "stack_status", "api_name", "api_endpoint", "outputs"}


def _sensor(cfn: Any = None, **kwargs: Any) -> StackStatusSensor:
    args: dict[str, Any] = {"task_id": "wait", "stack_name": stubbed_stacks.STACK_NAME,
                            "poke_interval": 0.2, "timeout": 60}
    sensor = StackStatusSensor(**{**args, **kwargs})
    if cfn is not None:
        sensor.__dict__["_cfn"] = cfn  # the sensor's cached CloudFormation client
    return sensor


def _first_event(trigger: StackStatusTrigger, timeout: float = 60) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), timeout))


def _assert_failure_message(message: str, status: str) -> None:
    assert f"is {status}" in message
    assert stubbed_stacks.FAILED_REASON in message
    assert "PredictFunction (AWS::Lambda::Function) CREATE_FAILED" in message
    assert "Unzipped size must be smaller" in message


@pytest.mark.parametrize("status", FAILURE_STATES)
def test_sensor_fails_at_once_with_the_reason(status: str, task_context: Any) -> None:
    client = stubbed_stacks.client()
    with Stubber(client) as stubber:
        stubbed_stacks.stub_failure(stubber, status)
        sensor = _sensor(client)
        with pytest.raises(AirflowFailException) as failure:
            sensor.execute(task_context())
        stubber.assert_no_pending_responses()
    _assert_failure_message(str(failure.value), status)


@pytest.mark.parametrize("status", FAILURE_STATES)
def test_trigger_reports_every_failure_state(status: str, task_context: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    client = stubbed_stacks.client()
    monkeypatch.setattr(StackStatusTrigger, "_cloudformation", lambda self: client)
    with Stubber(client) as stubber:
        stubbed_stacks.stub_failure(stubber, status)
        event = _first_event(StackStatusTrigger(stack_name=stubbed_stacks.STACK_NAME,
                                                poll_interval=0.1))
        stubber.assert_no_pending_responses()
    assert event["status"] == "failed"
    _assert_failure_message(event["message"], status)
    with pytest.raises(StackFailedError) as error:
        result_from_event(event)
    assert error.value.status == status
    with pytest.raises(AirflowFailException) as failure:
        _sensor().execute_complete(task_context(), event)
    _assert_failure_message(str(failure.value), status)


@pytest.mark.parametrize("status", ["UPDATE_COMPLETE", "IMPORT_COMPLETE"])
def test_sensor_succeeds_on_other_success_states(status: str, task_context: Any) -> None:
    client = stubbed_stacks.client()
    with Stubber(client) as stubber:
        stubber.add_response("describe_stacks", stubbed_stacks.stack(status))
        stubber.add_response("describe_stack_events", {"StackEvents": []})
        result = _sensor(client).execute(task_context())
    assert result["stack_status"] == status
    assert result["api_endpoint"].startswith("https://abc123.execute-api.eu-west-1.")
    assert set(result) == CONTRACT_KEYS


def test_sensor_waits_for_a_held_stack_and_returns_its_endpoint(
        aws: Any, boto_session: Any, task_context: Any) -> None:
    stack_id = create_held_stack(boto_session, aws.endpoint_url, "tdv-held")
    context = task_context()
    sensor = _sensor(stack_name="tdv-held", aws_conn_id="aws_default")
    threading.Timer(2.0, release, (aws.endpoint_url, stack_id)).start()
    started = time.monotonic()
    result = sensor.execute(context)
    assert time.monotonic() - started >= 1.5, "the sensor did not wait for the hold"
    assert result == {
        "stack_name": "tdv-held", "stack_id": stack_id, "stack_status": "CREATE_COMPLETE",
        "api_name": "tdv-held-api", "api_endpoint": "https://tdv-held.example.com/prod/predict",
        "outputs": {"ApiName": "tdv-held-api",
                    "ApiEndpoint": "https://tdv-held.example.com/prod/predict"},
    }
    assert context["ti"].xcoms["tdv_stack_id"] == stack_id


def test_trigger_waits_for_a_held_stack(aws: Any, boto_session: Any) -> None:
    stack_id = create_held_stack(boto_session, aws.endpoint_url, "tdv-held")
    threading.Timer(2.0, release, (aws.endpoint_url, stack_id)).start()
    started = time.monotonic()
    event = _first_event(StackStatusTrigger(stack_name="tdv-held", poll_interval=0.2))
    assert time.monotonic() - started >= 1.5
    assert event["status"] == "success"
    assert result_from_event(event)["stack_id"] == stack_id


def test_deferrable_sensor_defers_while_held_then_resumes(aws: Any, boto_session: Any,
                                                          task_context: Any) -> None:
    stack_id = create_held_stack(boto_session, aws.endpoint_url, "tdv-held")
    sensor = _sensor(stack_name="tdv-held", deferrable=True, timeout=120)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(task_context())
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout is not None and deferred.value.timeout.total_seconds() == 120
    classpath, kwargs = deferred.value.trigger.serialize()
    assert classpath == "tdv_airflow.triggers.deployment.StackStatusTrigger"
    trigger = StackStatusTrigger(**kwargs)  # what the triggerer rebuilds
    assert kwargs["after_event_id"], "the trigger should continue after the events logged"
    threading.Timer(1.0, release, (aws.endpoint_url, stack_id)).start()
    result = sensor.execute_complete(task_context(), _first_event(trigger))
    assert result["stack_status"] == "CREATE_COMPLETE"
    assert result["stack_id"] == stack_id


def test_reschedule_mode_reschedules_while_held(aws: Any, boto_session: Any,
                                                 task_context: Any) -> None:
    create_held_stack(boto_session, aws.endpoint_url, "tdv-held")
    sensor = _sensor(stack_name="tdv-held", mode="reschedule")
    with pytest.raises(AirflowRescheduleException):
        sensor.execute(task_context())


def test_missing_stack_fails_after_the_grace_period(aws: Any, task_context: Any) -> None:
    sensor = _sensor(stack_name="tdv-never-created", not_found_grace_period=1.0)
    started = time.monotonic()
    with pytest.raises(StackNotFoundError, match="tdv-never-created"):
        sensor.execute(task_context())
    assert time.monotonic() - started >= 1.0


def test_trigger_reports_a_missing_stack_and_running_out_of_attempts(aws: Any, boto_session: Any
                                                                     ) -> None:
    event = _first_event(StackStatusTrigger(stack_name="tdv-never-created", poll_interval=0.1))
    assert event["status"] == "not_found"
    with pytest.raises(StackNotFoundError, match="tdv-never-created"):
        result_from_event(event)
    create_held_stack(boto_session, aws.endpoint_url, "tdv-held")
    event = _first_event(StackStatusTrigger(stack_name="tdv-held", poll_interval=0.1,
                                            max_attempts=3))
    assert event["status"] == "timeout"
    with pytest.raises(StackTimeoutError, match="3 polls"):
        result_from_event(event)


def test_trigger_serializes_to_an_importable_classpath() -> None:
    trigger = StackStatusTrigger(stack_name="s", poll_interval=5, max_attempts=7,
                                 not_found_grace_period=30, aws_conn_id="c",
                                 region_name="eu-west-1", verify=False,
                                 botocore_config={"retries": {"max_attempts": 3}})
    classpath, kwargs = trigger.serialize()
    from airflow.sdk._shared.module_loading import import_string

    rebuilt = import_string(classpath)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["region_name"] == "eu-west-1" and kwargs["max_attempts"] == 7


def test_negative_grace_period_is_rejected() -> None:
    from tdv_airflow.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="not_found_grace_period"):
        StackStatusSensor(task_id="s", stack_name="x", not_found_grace_period=-1)
