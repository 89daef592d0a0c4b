"""Real CloudFormation clients answering with botocore's Stubber, for the states the
emulator cannot produce (failures, rollbacks, status reasons, resource events).

The shapes follow ``describe_stacks`` / ``describe_stack_events`` as AWS returns them;
the Stubber validates every response against botocore's service model.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

STACK_NAME = "tdv-iris"
STACK_ID = ("arn:aws:cloudformation:eu-west-1:123456789012:stack/tdv-iris/"
            "0a1b2c3d-4e5f-6789-abcd-ef0123456789")
FAILED_REASON = ("The following resource(s) failed to create: [PredictFunction]. "
                 "Rollback requested by user.")
RESOURCE_REASON = ("Resource handler returned message: \"Unzipped size must be smaller "
                   "than 262144000 bytes\" (Service: Lambda, Status Code: 400)")
_T0 = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)


def client() -> Any:
    """A real boto3 CloudFormation client (never sends a request while stubbed)."""
    import boto3

    return boto3.client("cloudformation", region_name="eu-west-1", aws_access_key_id="x",
                        aws_secret_access_key="x")  # noqa: S106 - never used on the wire


def stack(status: str, reason: str | None = None, tags: dict[str, str] | None = None,
          updated_seconds: int | None = None) -> dict[str, Any]:
    """A ``describe_stacks`` answer for one stack in ``status``.

    :param status: its ``StackStatus``.
    :param reason: its ``StackStatusReason``.
    :param tags: its tags.
    :param updated_seconds: its ``LastUpdatedTime``, in seconds after its creation.
    """
    entry: dict[str, Any] = {
        "StackId": STACK_ID, "StackName": STACK_NAME, "CreationTime": _T0,
        "StackStatus": status,
        "Outputs": [
            {"OutputKey": "ApiName", "OutputValue": "tdv-iris-api"},
            {"OutputKey": "ApiEndpoint",
             "OutputValue": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/predict"},
        ],
    }
    if reason:
        entry["StackStatusReason"] = reason
    if tags is not None:
        entry["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    if updated_seconds is not None:
        entry["LastUpdatedTime"] = _T0 + timedelta(seconds=updated_seconds)
    return {"Stacks": [entry]}


def _event(n: int, logical_id: str, kind: str, status: str, reason: str | None = None
           ) -> dict[str, Any]:
    event: dict[str, Any] = {
        "StackId": STACK_ID, "StackName": STACK_NAME, "EventId": f"event-{n}",
        "LogicalResourceId": logical_id, "PhysicalResourceId": "",
        "ResourceType": kind, "Timestamp": _T0 + timedelta(seconds=n), "ResourceStatus": status,
    }
    if reason:
        event["ResourceStatusReason"] = reason
    return event


def failed_events(final_status: str) -> dict[str, Any]:
    """A ``describe_stack_events`` answer (newest first) of a create that failed."""
    stack_kind, fn_kind = "AWS::CloudFormation::Stack", "AWS::Lambda::Function"
    return {"StackEvents": [
        _event(4, STACK_NAME, stack_kind, final_status, FAILED_REASON),
        _event(3, "PredictFunction", fn_kind, "CREATE_FAILED", RESOURCE_REASON),
        _event(2, "PredictFunction", fn_kind, "CREATE_IN_PROGRESS"),
        _event(1, STACK_NAME, stack_kind, "CREATE_IN_PROGRESS", "User Initiated"),
    ]}


def stub_failure(stubber: Any, status: str) -> None:
    """Queue what one check of a failed stack reads: the stack, its new events, and
    the events again for the first failed resource."""
    stubber.add_response("describe_stacks", stack(status, FAILED_REASON))
    stubber.add_response("describe_stack_events", failed_events(status))
    stubber.add_response("describe_stack_events", failed_events(status))
