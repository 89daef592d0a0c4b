"""Teardown and retention on the emulator; DELETE_FAILED through botocore's Stubber."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.stub import Stubber

from tdv_airflow.core.retention import DEPLOYMENT_TAG, deployment_stacks, retire, teardown
from tdv_airflow.exceptions import InvalidInputError, StackFailedError

TEMPLATE = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'


def _create(cfn: Any, name: str, deployment: str) -> None:
    cfn.create_stack(StackName=name, TemplateBody=TEMPLATE,
                     Tags=[{"Key": DEPLOYMENT_TAG, "Value": deployment}])


def test_teardown_deletes_and_absent_is_success(cfn: Any) -> None:
    _create(cfn, "tdv-gone", "iris")
    assert teardown(cfn, "tdv-gone", poll_interval=0.1) == {
        "stack_name": "tdv-gone", "deleted": True, "stack_status": "DELETE_COMPLETE"}
    assert [s for s in cfn.describe_stacks()["Stacks"]
            if s["StackStatus"] != "DELETE_COMPLETE"] == []
    assert teardown(cfn, "tdv-gone", poll_interval=0.1)["deleted"] is False


def test_retention_keeps_the_newest(cfn: Any) -> None:
    for i in range(5):
        _create(cfn, f"tdv-iris-v{i}", "iris")
    _create(cfn, "tdv-other-v0", "other")
    assert [s["StackName"] for s in deployment_stacks(cfn, "iris")] == [
        "tdv-iris-v4", "tdv-iris-v3", "tdv-iris-v2", "tdv-iris-v1", "tdv-iris-v0"]
    assert retire(cfn, "iris", keep=9, poll_interval=0.1) == []
    with pytest.raises(InvalidInputError, match="keep must be a whole number of stacks >= 1"):
        retire(cfn, "iris", keep=0)
    assert retire(cfn, "iris", keep=2, poll_interval=0.1) == [
        "tdv-iris-v2", "tdv-iris-v1", "tdv-iris-v0"]
    assert [s["StackName"] for s in deployment_stacks(cfn, "iris")] == [
        "tdv-iris-v4", "tdv-iris-v3"]
    assert [s["StackName"] for s in deployment_stacks(cfn, "other")] == ["tdv-other-v0"]


def _stack(status: str) -> dict[str, Any]:
    return {"Stacks": [{
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/tdv-x/1",
        "StackName": "tdv-x", "StackStatus": status,
        "CreationTime": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}]}


def test_delete_failed_is_retried_once_then_names_what_is_left(cfn: Any) -> None:
    stub = Stubber(cfn)
    stub.add_response("describe_stacks", _stack("CREATE_COMPLETE"))
    for _ in range(2):
        stub.add_response("delete_stack", {})
        stub.add_response("describe_stacks", _stack("DELETE_IN_PROGRESS"))
        stub.add_response("describe_stacks", _stack("DELETE_FAILED"))
    stub.add_response("describe_stack_resources", {"StackResources": [{
        "LogicalResourceId": "Bucket", "PhysicalResourceId": "tdv-x-bucket",
        "ResourceType": "AWS::S3::Bucket", "ResourceStatus": "DELETE_FAILED",
        "ResourceStatusReason": "The bucket you tried to delete is not empty",
        "Timestamp": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}]})
    with stub, pytest.raises(StackFailedError) as info:
        teardown(cfn, "tdv-x", poll_interval=0)
    stub.assert_no_pending_responses()
    assert "DELETE_FAILED" in str(info.value)
    assert "Bucket (AWS::S3::Bucket, tdv-x-bucket): The bucket you tried to delete is not empty" \
        in str(info.value)


def test_delete_failed_then_success_on_retry(cfn: Any) -> None:
    stub = Stubber(cfn)
    stub.add_response("describe_stacks", _stack("UPDATE_COMPLETE"))
    stub.add_response("delete_stack", {})
    stub.add_response("describe_stacks", _stack("DELETE_FAILED"))
    stub.add_response("delete_stack", {})
    stub.add_response("describe_stacks", _stack("DELETE_COMPLETE"))
    with stub:
        assert teardown(cfn, "tdv-x", poll_interval=0)["deleted"] is True
    stub.assert_no_pending_responses()
