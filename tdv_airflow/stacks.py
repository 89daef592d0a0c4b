"""The CloudFormation stack lifecycle: create or update, watch, classify, delete.

Failure detection does not use botocore's waiters: ``stack_create_complete`` treats
UPDATE_FAILED as success and waits out a whole rollback. Here every status is classified
once (:func:`classify`) and a failure is reported as soon as it is seen.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from tdv_airflow.exceptions import (
    InvalidInputError,
    StackExistsError,
    StackFailedError,
    StackNotFoundError,
    StackTimeoutError,
)

log = logging.getLogger(__name__)

State = Literal["success", "in_progress", "failed"]
OnExists = Literal["update", "skip", "fail"]
ON_EXISTS_CHOICES: tuple[str, ...] = ("update", "skip", "fail")

SUCCESS_STATES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
#: States where a stack is stable and may be updated (an update that rolled back left
#: the previous version serving).
UPDATABLE_STATES = SUCCESS_STATES | {"UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
#: States from which only a delete is possible.
DEAD_END_STATES = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"})
#: In-progress states that lead to success; every other *_IN_PROGRESS is a rollback
#: or a delete, which is a failure for whoever waits for a deployment.
PROGRESS_STATES = frozenset({
    "CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "IMPORT_IN_PROGRESS", "REVIEW_IN_PROGRESS",
})
CAPABILITIES = ["CAPABILITY_IAM"]


def classify(status: str) -> State:
    """Whether ``status`` is a success, still in progress, or a failure.

    :param status: a CloudFormation ``StackStatus``.
    """
    if status in SUCCESS_STATES:
        return "success"
    if status in PROGRESS_STATES:
        return "in_progress"
    return "failed"


def _is_missing_stack(exc: Exception) -> bool:
    """The one place that recognises CloudFormation's "stack does not exist" error."""
    err = getattr(exc, "response", {}).get("Error", {})
    return err.get("Code") == "ValidationError" and "does not exist" in err.get("Message", "")


def _is_no_update(exc: Exception) -> bool:
    err = getattr(exc, "response", {}).get("Error", {})
    return err.get("Code") == "ValidationError" and "No updates are to be performed" in err.get(
        "Message", "")


def describe(cfn: Any, stack_name: str) -> dict[str, Any] | None:
    """The stack's description, or ``None`` when it does not exist.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name or id.
    """
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except cfn.exceptions.ClientError as exc:
        if _is_missing_stack(exc):
            return None
        raise
    return stacks[0] if stacks else None


def outputs_of(stack: Mapping[str, Any]) -> dict[str, str]:
    """The stack's outputs as ``{OutputKey: OutputValue}``.

    :param stack: a ``describe_stacks`` entry.
    """
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def first_failed_event(cfn: Any, stack_name: str) -> str | None:
    """The earliest resource failure among the stack's recent events, as one line.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name or id.
    """
    try:
        events = cfn.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    except cfn.exceptions.ClientError:
        return None
    failed = [e for e in events if str(e.get("ResourceStatus", "")).endswith("_FAILED")
              and e.get("ResourceType") != "AWS::CloudFormation::Stack"]
    if not failed:
        return None
    e = failed[-1]  # events come newest first
    return (f"{e.get('LogicalResourceId')} ({e.get('ResourceType')}) {e.get('ResourceStatus')}: "
            f"{e.get('ResourceStatusReason', 'no reason given')}")


def raise_if_failed(cfn: Any, stack: Mapping[str, Any]) -> None:
    """Raise :class:`StackFailedError` with the reason when the stack has failed.

    :param cfn: a boto3 CloudFormation client.
    :param stack: a ``describe_stacks`` entry.
    """
    status = stack["StackStatus"]
    if classify(status) == "failed":
        raise StackFailedError(stack["StackName"], status, stack.get("StackStatusReason"),
                               first_failed_event(cfn, stack.get("StackId", stack["StackName"])))


def summary(stack: Mapping[str, Any]) -> dict[str, Any]:
    """The create contract: ``stack_id``, ``stack_name``, ``stack_status``.

    :param stack: a ``describe_stacks`` entry.
    """
    return {"stack_id": stack["StackId"], "stack_name": stack["StackName"],
            "stack_status": stack["StackStatus"]}


def wait_for_stack(
    cfn: Any,
    stack_name: str,
    poll_interval: float = 5.0,
    max_attempts: int = 360,
    on_poll: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Poll until the stack succeeds; fail at the first failure state.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name or id.
    :param poll_interval: seconds between polls.
    :param max_attempts: polls before giving up.
    :param on_poll: called with each description (e.g. to log new events).
    :raises StackFailedError: on a failure state, with its reason.
    :raises StackNotFoundError: when the stack does not exist.
    :raises StackTimeoutError: when ``max_attempts`` polls pass without a final state.
    """
    for attempt in range(max_attempts):
        stack = describe(cfn, stack_name)
        if stack is None:
            raise StackNotFoundError(stack_name)
        if on_poll:
            on_poll(stack)
        state = classify(stack["StackStatus"])
        if state == "success":
            return stack
        raise_if_failed(cfn, stack)
        if attempt + 1 < max_attempts:
            time.sleep(poll_interval)
    raise StackTimeoutError(f"stack {stack_name!r} is still {stack['StackStatus']} after "
                            f"{max_attempts} polls {poll_interval} s apart")


def _delete_and_wait(cfn: Any, stack: Mapping[str, Any], poll_interval: float) -> None:
    stack_id = stack["StackId"]
    cfn.delete_stack(StackName=stack_id)
    for _ in range(720):
        current = describe(cfn, stack_id)
        if current is None or current["StackStatus"] == "DELETE_COMPLETE":
            return
        if current["StackStatus"] == "DELETE_FAILED":
            raise StackFailedError(stack["StackName"], "DELETE_FAILED",
                                   current.get("StackStatusReason"),
                                   first_failed_event(cfn, stack_id))
        time.sleep(poll_interval)
    raise StackTimeoutError(f"stack {stack['StackName']!r} was not deleted in time")


def create_or_update(
    cfn: Any,
    stack_name: str,
    template_url: str,
    parameters: Sequence[Mapping[str, str]],
    tags: Mapping[str, str] | None = None,
    on_exists: str = "update",
    client_request_token: str | None = None,
    poll_interval: float = 5.0,
) -> dict[str, Any]:
    """Create the stack, or bring an existing one to this template and parameters.

    Safe to retry: a stack in progress is waited for (not created again), a stack in
    ROLLBACK_COMPLETE is deleted and recreated, and an update that changes nothing counts
    as success.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name (already checked).
    :param template_url: the template's HTTPS S3 URL.
    :param parameters: CloudFormation parameters.
    :param tags: tags for the stack and its resources.
    :param on_exists: ``"update"`` (default), ``"skip"`` or ``"fail"``.
    :param client_request_token: idempotency token for the create/update call.
    :param poll_interval: seconds between polls while waiting for a stack in progress.
    :returns: the create contract plus ``operation`` (created, updated, unchanged,
        skipped or recreated).
    """
    if on_exists not in ON_EXISTS_CHOICES:
        raise InvalidInputError(f"invalid on_exists {on_exists!r}: expected one of "
                                f"{list(ON_EXISTS_CHOICES)}")
    args: dict[str, Any] = {
        "StackName": stack_name, "TemplateURL": template_url, "Parameters": list(parameters),
        "Capabilities": CAPABILITIES,
        "Tags": [{"Key": k, "Value": str(v)} for k, v in (tags or {}).items()],
    }
    if client_request_token:
        args["ClientRequestToken"] = client_request_token
    stack = describe(cfn, stack_name)
    operation = "created"
    if stack is not None and classify(stack["StackStatus"]) == "in_progress":
        log.info("stack %s is %s: waiting for it before going on", stack_name,
                 stack["StackStatus"])
        stack = wait_for_stack(cfn, stack_name, poll_interval=poll_interval)
    if stack is not None and stack["StackStatus"] in DEAD_END_STATES:
        log.warning("!!! stack %s is %s, from which CloudFormation allows only a delete: "
                    "DELETING it and creating it again", stack_name, stack["StackStatus"])
        _delete_and_wait(cfn, stack, poll_interval)
        stack, operation = None, "recreated"
    if stack is None:
        stack_id = cfn.create_stack(**args, OnFailure="ROLLBACK")["StackId"]
        return {**summary(describe(cfn, stack_id) or {}), "operation": operation}
    if on_exists == "skip":
        return {**summary(stack), "operation": "skipped"}
    if on_exists == "fail":
        raise StackExistsError(f"stack {stack_name!r} already exists ({stack['StackStatus']}) "
                               "and on_exists='fail'")
    if stack["StackStatus"] not in UPDATABLE_STATES:
        raise_if_failed(cfn, stack)
    try:
        cfn.update_stack(**args)
    except cfn.exceptions.ClientError as exc:
        if not _is_no_update(exc):
            raise
        log.info("stack %s already matches this template and parameters", stack_name)
        return {**summary(stack), "operation": "unchanged"}
    return {**summary(describe(cfn, stack_name) or {}), "operation": "updated"}


def delete(cfn: Any, stack_name: str, poll_interval: float = 5.0) -> bool:
    """Delete the stack and wait; an absent stack counts as success.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name.
    :param poll_interval: seconds between polls.
    :returns: whether a stack was deleted.
    """
    stack = describe(cfn, stack_name)
    if stack is None:
        return False
    _delete_and_wait(cfn, stack, poll_interval)
    return True
