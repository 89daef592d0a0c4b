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


def test_a_version_redeployed_after_a_rolled_back_update_succeeds_and_its_own_fails(
        cfn: Any, bucket: str, model_in_s3: str, task_context: Any) -> None:
    """Run 1 deploys v1; run 2's update to v2 fails and rolls back (UPDATE_ROLLBACK_COMPLETE,
    serving v1): its sensor fails with the reason. Run 3 re-deploys v1: nothing to update,
    and its sensor (poking or deferred) succeeds on the healthy stack."""
    from tdv_airflow.local.fix_stack_updates import FAIL_UPDATE_TAG
    from tdv_airflow.operators import CreateStackOperator, PrepareDeploymentOperator
    from testkit.task_context import FakeTaskInstance

    prepared = PrepareDeploymentOperator(
        task_id="prepare", bucket=bucket, model_s3_key=model_in_s3,
        prepro_fn="tdv_airflow.core.naming:stack_name_from").execute(task_context())

    def create(run_id: str, **kwargs: Any) -> dict[str, Any]:
        return CreateStackOperator(
            task_id="create", prepare_env_response=prepared, stack_name="tdv-rolled",
            poll_interval=0.2, **kwargs).execute(task_context(FakeTaskInstance(run_id=run_id)))

    def sensor(created: dict[str, Any], **kwargs: Any) -> StackStatusSensor:
        return _sensor(stack_name="tdv-rolled", aws_conn_id="aws_default",
                       expected_fingerprint=created["fingerprint"], **kwargs)

    v1 = create("run-1")
    assert sensor(v1).execute(task_context())["stack_status"] == "CREATE_COMPLETE"
    v2 = create("run-2", stack_parameters={"StageName": "v2"},
                tags={FAIL_UPDATE_TAG: "forced by the test"})
    assert v2["stack_status"] == "UPDATE_ROLLBACK_COMPLETE"
    with pytest.raises(AirflowFailException) as own:
        sensor(v2).execute(task_context())
    assert "is UPDATE_ROLLBACK_COMPLETE" in str(own.value)
    assert "forced by the test" in str(own.value)

    again = create("run-3")
    assert again == {**v1, "stack_status": "UPDATE_ROLLBACK_COMPLETE"}
    endpoint = sensor(again).execute(task_context())
    assert set(endpoint) == CONTRACT_KEYS
    assert endpoint["stack_status"] == "UPDATE_ROLLBACK_COMPLETE"
    assert endpoint["outputs"]["StageName"] == "prod", "the stack should serve v1 again"
    assert sensor(again, deferrable=True).execute(task_context()) == endpoint
    # The trigger (the deferred wait) decides as the sensor does.
    waiting = sensor(again, deferrable=True).stack_trigger(
        "tdv-rolled", 0.1, expected_fingerprint=again["fingerprint"])
    payload = _first_event(StackStatusTrigger(**waiting.serialize()[1]))
    assert payload["status"] == "success" and payload["fingerprint"] == v1["fingerprint"]
    assert _sensor().execute_complete(task_context(), payload) == endpoint
    payload = _first_event(StackStatusTrigger(stack_name="tdv-rolled", poll_interval=0.1,
                                              expected_fingerprint=v2["fingerprint"]))
    assert payload["status"] == "failed" and "forced by the test" in payload["message"]


def test_an_expected_fingerprint_that_is_not_one_is_refused_at_parse_time() -> None:
    from tdv_airflow.exceptions import InvalidInputError

    with pytest.raises(InvalidInputError, match="expected_fingerprint.*'v1'"):
        StackStatusSensor(task_id="s", stack_name="x", expected_fingerprint="v1")
    templated = StackStatusSensor(task_id="s", stack_name="x",
                                  expected_fingerprint="{{ ti.xcom_pull('create') }}")
    assert "expected_fingerprint" in templated.template_fields
