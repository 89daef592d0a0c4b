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
    StackExistsError,
    StackFailedError,
    StackNotFoundError,
    StackTimeoutError,
)

log = logging.getLogger(__name__)

State = Literal["success", "in_progress", "failed"]

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
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}


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
    status = "unknown"
    for attempt in range(max_attempts):
        stack = describe(cfn, stack_name)
        if stack is None:
            raise StackNotFoundError(stack_name)
        if on_poll:
            on_poll(stack)
        status = stack["StackStatus"]
        state = classify(status)
        if state == "success":
            return stack
        raise_if_failed(cfn, stack)
        if attempt + 1 < max_attempts:
            time.sleep(poll_interval)
    raise StackTimeoutError(f"stack {stack_name!r} is still {status} after "
                            f"{max_attempts} polls {poll_interval} s apart")


def delete_and_wait(cfn: Any, stack_id: str, poll_interval: float = 5.0,
                    max_attempts: int = 720) -> dict[str, Any] | None:
    """Ask CloudFormation to delete a stack, then poll until it is gone or the delete failed.

    :param cfn: a boto3 CloudFormation client.
    :param stack_id: the stack id (a name would match a newer stack of that name).
    :param poll_interval: seconds between polls.
    :param max_attempts: polls before giving up.
    :returns: ``None`` when the stack is gone; its description when it is DELETE_FAILED.
    :raises StackTimeoutError: when neither happens in ``max_attempts`` polls.
    """
    cfn.delete_stack(StackName=stack_id)
    for _ in range(max_attempts):
        stack = describe(cfn, stack_id)
        if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
            return None
        if stack["StackStatus"] == "DELETE_FAILED":
            return stack
        time.sleep(poll_interval)
    raise StackTimeoutError(f"stack {stack_id!r} was not deleted after {max_attempts} polls "
                            f"{poll_interval} s apart")


def create_or_update(
    cfn: Any,
    stack_name: str,
    template_url: str,
    parameters: Sequence[Mapping[str, str]],
    tags: Mapping[str, str] | None = None,
    on_exists: str = "update",
    client_request_token: str | None = None,
    poll_interval: float = 5.0,
    role_arn: str | None = None,
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
    :param on_exists: ``"update"`` (default), ``"skip"`` or ``"fail"`` (already checked,
        see :func:`tdv_airflow.core.validation.check_on_exists`).
    :param client_request_token: idempotency token for the create/update call.
    :param poll_interval: seconds between polls while waiting for a stack in progress.
    :param role_arn: a CloudFormation service role (``RoleARN``) that creates and updates
        the stack's resources instead of the caller (already checked).
    :returns: the create contract plus ``operation`` (created, updated, unchanged,
        skipped or recreated).
    """
    args: dict[str, Any] = {
        "StackName": stack_name, "TemplateURL": template_url, "Parameters": list(parameters),
        "Capabilities": CAPABILITIES,
        "Tags": [{"Key": k, "Value": str(v)} for k, v in (tags or {}).items()],
    }
    if role_arn:
        args["RoleARN"] = role_arn
    def token(operation: str) -> dict[str, str]:
        """A distinct token per operation: AWS refuses one token for two operations."""
        if not client_request_token:
            return {}
        return {"ClientRequestToken": f"{client_request_token[:120]}-{operation}"}

    stack = describe(cfn, stack_name)
    operation = "created"
    if stack is not None and classify(stack["StackStatus"]) == "in_progress":
        log.info("stack %s is %s: waiting for it before going on", stack_name,
                 stack["StackStatus"])
        stack = wait_for_stack(cfn, stack_name, poll_interval=poll_interval)
    if stack is not None and stack["StackStatus"] in DEAD_END_STATES:
        log.warning("!!! stack %s is %s, from which CloudFormation allows only a delete: "
                    "DELETING it and creating it again", stack_name, stack["StackStatus"])
        failed = delete_and_wait(cfn, stack["StackId"], poll_interval)
        if failed is not None:
            raise StackFailedError(stack_name, "DELETE_FAILED", failed.get("StackStatusReason"),
                                   first_failed_event(cfn, stack["StackId"]))
        stack, operation = None, "recreated"
    if stack is None:
        stack_id = cfn.create_stack(**args, **token(operation), OnFailure="ROLLBACK")["StackId"]
        return {**summary(describe(cfn, stack_id) or {}), "operation": operation}
    if on_exists == "skip":
        return {**summary(stack), "operation": "skipped"}
    if on_exists == "fail":
        raise StackExistsError(f"stack {stack_name!r} already exists ({stack['StackStatus']}) "
                               "and on_exists='fail'")
    if stack["StackStatus"] not in UPDATABLE_STATES:
        raise_if_failed(cfn, stack)
    try:
        cfn.update_stack(**args, **token("updated"))
    except cfn.exceptions.ClientError as exc:
        if not _is_no_update(exc):
            raise
        log.info("stack %s already matches this template and parameters", stack_name)
        return {**summary(stack), "operation": "unchanged"}
    return {**summary(describe(cfn, stack_name) or {}), "operation": "updated"}


#: The stack tag holding :func:`fingerprint` of the template, parameters and tags last
#: applied, so that a retry can tell that its operation already went through.
FINGERPRINT_TAG = "tdv-airflow:fingerprint"


def fingerprint(template_url: str, parameters: Sequence[Mapping[str, str]],
                tags: Mapping[str, str] | None = None, role_arn: str | None = None) -> str:
    """A digest of everything a create or update would apply to a stack.

    Equal fingerprints mean the same template, parameters and tags; tag the stack with it
    (:data:`FINGERPRINT_TAG`) to recognise an operation that already went through.

    :param template_url: the template's HTTPS S3 URL (content-addressed).
    :param parameters: CloudFormation parameters.
    :param tags: the stack tags, without the fingerprint tag.
    :param role_arn: the CloudFormation service role the operation runs with.
    """
    import hashlib
    import json

    canonical = json.dumps({
        "template_url": template_url,
        "parameters": sorted((p["ParameterKey"], p["ParameterValue"]) for p in parameters),
        "tags": sorted((k, str(v)) for k, v in (tags or {}).items() if k != FINGERPRINT_TAG),
        **({"role_arn": role_arn} if role_arn else {}),
    }, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def tags_of(stack: Mapping[str, Any]) -> dict[str, str]:
    """The stack's tags as ``{Key: Value}``.

    :param stack: a ``describe_stacks`` entry.
    """
    return {t["Key"]: t["Value"] for t in stack.get("Tags") or []}


def find_applied(cfn: Any, stack_name: str, expected_fingerprint: str, *,
                 stack: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The stack if it already carries ``expected_fingerprint`` and is not failed.

    A retried task finds its own earlier create or update here (finished or still in
    progress) and need not issue it again; a stack that failed or rolled back is not
    returned, so the normal path (update, or delete and recreate) runs.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name.
    :param expected_fingerprint: what :func:`fingerprint` gives for the wanted state.
    :param stack: the stack as just described (described here when ``None``).
    """
    stack = dict(stack) if stack is not None else describe(cfn, stack_name)
    if stack is None or classify(stack["StackStatus"]) == "failed":
        return None
    if tags_of(stack).get(FINGERPRINT_TAG) != expected_fingerprint:
        return None
    return stack


def format_event(event: Mapping[str, Any]) -> str:
    """One stack event as a log line.

    :param event: a ``describe_stack_events`` entry.
    """
    line = (f"{event.get('Timestamp')} {event.get('LogicalResourceId')} "
            f"({event.get('ResourceType')}) {event.get('ResourceStatus')}")
    reason = event.get("ResourceStatusReason")
    return f"{line}: {reason}" if reason else line


def _is_operation_start(event: Mapping[str, Any]) -> bool:
    return (event.get("ResourceType") == "AWS::CloudFormation::Stack"
            and str(event.get("ResourceStatus", "")).endswith("_IN_PROGRESS")
            and event.get("ResourceStatusReason") == "User Initiated")


class EventTail:
    """Follows a stack's events, returning each one once (like ``tail -f``).

    The first :meth:`poll` returns the events of the stack's current operation (back to
    its "User Initiated" start, or those after ``not_before``); later polls return only
    events that arrived since.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name or id.
    :param not_before: ignore events older than this (an aware datetime), e.g. those a
        previous process already reported.
    :param after_event_id: the last event already reported (e.g. by another process);
        only later events are returned.
    :param max_pages: pages of ``describe_stack_events`` read at most per poll.
    """

    def __init__(self, cfn: Any, stack_name: str, not_before: Any = None,
                 after_event_id: str | None = None, max_pages: int = 5) -> None:
        self._cfn = cfn
        self._stack_name = stack_name
        self._not_before = not_before
        self._max_pages = max_pages
        self._last_id: str | None = after_event_id

    @property
    def last_event_id(self) -> str | None:
        """The id of the newest event returned so far."""
        return self._last_id

    def poll(self) -> list[dict[str, Any]]:
        """The events not returned before, oldest first (empty if the stack is gone)."""
        fresh: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"StackName": self._stack_name}
        try:
            for _ in range(self._max_pages):
                page = self._cfn.describe_stack_events(**kwargs)
                done = self._collect(page.get("StackEvents", []), fresh)
                if done or not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
        except self._cfn.exceptions.ClientError as exc:
            if _is_missing_stack(exc):
                return []
            raise
        if fresh:
            self._last_id = fresh[0]["EventId"]
        return fresh[::-1]

    def _collect(self, events: Sequence[dict[str, Any]], into: list[dict[str, Any]]) -> bool:
        """Add new events (newest first) to ``into``; say whether older ones are all known."""
        for event in events:
            if event.get("EventId") == self._last_id:
                return True
            if self._not_before is not None and event.get("Timestamp") is not None \
                    and event["Timestamp"] < self._not_before:
                return True
            into.append(event)
            if self._last_id is None and self._not_before is None and _is_operation_start(event):
                return True
        return False
