"""DeleteStackOperator (in the task and deferred), retention, and the DELETE_FAILED retry."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from botocore.stub import Stubber

from tdv_airflow.core.retention import DEPLOYMENT_TAG, retire
from tdv_airflow.exceptions import StackFailedError
from tdv_airflow.operators import DeleteStackOperator
from testkit.aws_state import live_stacks

TEMPLATE = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'


def _create(cfn: Any, name: str, deployment: str = "tdv-iris") -> str:
    return str(cfn.create_stack(StackName=name, TemplateBody=TEMPLATE,
                                Tags=[{"Key": DEPLOYMENT_TAG, "Value": deployment}])["StackId"])


def _run_trigger(trigger: Any) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger yielded nothing")
    return asyncio.run(first())


def test_delete_in_task_then_absent_is_success(cfn: Any, task_context: Any) -> None:
    _create(cfn, "tdv-iris-v1")
    op = DeleteStackOperator(task_id="delete", stack_name="tdv-iris-v1", poll_interval=0.1)
    assert op.execute(task_context()) == {
        "stack_name": "tdv-iris-v1", "deleted": True, "stack_status": "DELETE_COMPLETE"}
    assert live_stacks(cfn) == []
    assert op.execute(task_context())["deleted"] is False


def test_delete_deferred_waits_on_the_trigger(cfn: Any, task_context: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    stack_id = _create(cfn, "tdv-iris-v2")
    op = DeleteStackOperator(task_id="delete", stack_name="tdv-iris-v2", deferrable=True,
                             poll_interval=0.1, max_attempts=50)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(task_context())
    assert deferred.value.kwargs == {"stack_id": stack_id, "attempt": 1}
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "tdv_airflow.triggers.teardown.StackDeletedTrigger"
    event = _run_trigger(type(trigger)(**kwargs))
    assert event["status"] == "deleted"
    result = op.execute_complete(task_context(), event, **deferred.value.kwargs)
    assert result["deleted"] is True
    assert live_stacks(cfn) == []
    # absent: no deferral at all
    assert op.execute(task_context())["deleted"] is False


def test_deferred_delete_failed_is_retried_once_then_names_what_is_left(
        task_context: Any, aws: Any) -> None:
    """The emulator never fails a delete: botocore's Stubber gives DELETE_FAILED."""
    from airflow.sdk.exceptions import TaskDeferred

    op = DeleteStackOperator(task_id="delete", stack_name="tdv-iris-v3", deferrable=True,
                             poll_interval=0.1)
    stack_id = "arn:aws:cloudformation:us-east-1:123456789012:stack/tdv-iris-v3/abc"
    failed = {"status": "delete_failed", "stack_name": stack_id, "message": "DELETE_FAILED"}
    with Stubber(op.hook.conn) as stub:
        stub.add_response("delete_stack", {}, {"StackName": stack_id})
        with pytest.raises(TaskDeferred) as again:
            op.execute_complete(task_context(), failed, stack_id=stack_id, attempt=1)
        assert again.value.kwargs == {"stack_id": stack_id, "attempt": 2}
        stub.add_response("describe_stack_resources", {"StackResources": [{
            "LogicalResourceId": "Bucket", "PhysicalResourceId": "tdv-logs",
            "ResourceType": "AWS::S3::Bucket", "ResourceStatus": "DELETE_FAILED",
            "ResourceStatusReason": "The bucket you tried to delete is not empty",
            "Timestamp": "2025-01-01T00:00:00Z", "StackName": "tdv-iris-v3"}]},
            {"StackName": stack_id})
        with pytest.raises(StackFailedError, match="DELETE_FAILED.*Bucket.*not empty"):
            op.execute_complete(task_context(), failed, stack_id=stack_id, attempt=2)
        stub.assert_no_pending_responses()


def test_retire_keeps_the_newest_n_of_one_deployment(cfn: Any) -> None:
    for i in range(5):
        _create(cfn, f"tdv-iris-v{i}")
    _create(cfn, "tdv-other-v0", deployment="tdv-other")
    assert retire(cfn, "tdv-iris", keep=3, poll_interval=0.1) == ["tdv-iris-v1", "tdv-iris-v0"]
    assert live_stacks(cfn) == ["tdv-iris-v2", "tdv-iris-v3", "tdv-iris-v4", "tdv-other-v0"]
    assert retire(cfn, "tdv-iris", keep=3, poll_interval=0.1) == []


def test_trigger_reports_delete_failed_and_timeout(
        boto_session: Any, aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """DELETE_FAILED and a delete still in progress: states the emulator never holds."""
    from tdv_airflow.triggers import StackDeletedTrigger

    cfn = boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)

    def stack(status: str) -> dict[str, Any]:
        return {"Stacks": [{"StackName": "tdv-x", "StackId": "arn:stack/tdv-x/1",
                            "CreationTime": "2025-01-01T00:00:00Z", "StackStatus": status}]}

    trigger = StackDeletedTrigger(stack_name="tdv-x", poll_interval=0.01, max_attempts=2)
    monkeypatch.setattr(trigger, "_cloudformation", lambda: cfn)
    with Stubber(cfn) as stub:
        stub.add_response("describe_stacks", stack("DELETE_IN_PROGRESS"))
        stub.add_response("describe_stacks", stack("DELETE_FAILED"))
        assert _run_trigger(trigger)["status"] == "delete_failed"
        stub.add_response("describe_stacks", stack("DELETE_IN_PROGRESS"))
        stub.add_response("describe_stacks", stack("DELETE_IN_PROGRESS"))
        event = _run_trigger(trigger)
        assert event["status"] == "timeout" and "2 polls" in event["message"]
