"""The CloudFormation stack lifecycle: create or update, watch, classify, delete.

Failure detection does not use botocore's waiters: ``stack_create_complete`` treats
UPDATE_FAILED as success and waits out a whole rollback. Here every status is classified
once (:func:`classify`) and a failure is reported as soon as it is seen.

A failed update rolls back to UPDATE_ROLLBACK_COMPLETE, a stable state serving the
previous template, parameters and tags. Knowing the :func:`fingerprint` it wanted (the
stack's :data:`FINGERPRINT_TAG`) tells a stack rolled back to exactly that (success,
:func:`state_of`) from one whose own update rolled back (a failure).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from tdv_airflow.core.naming import operation_token
from tdv_airflow.core.stack_events import first_failed_event, is_missing_stack
from tdv_airflow.exceptions import (
    StackExistsError,
    StackFailedError,
    StackNotFoundError,
    StackTimeoutError,
)

log = logging.getLogger(__name__)

State = Literal["success", "in_progress", "failed"]

SUCCESS_STATES = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
#: Stable states after an update (or import) that failed: the stack serves its previous
#: configuration again.
ROLLED_BACK_STATES = frozenset({"UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"})
#: States where a stack is stable and may be updated.
UPDATABLE_STATES = SUCCESS_STATES | ROLLED_BACK_STATES
#: States from which only a delete is possible.
DEAD_END_STATES = frozenset({"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"})
#: In-progress states that lead to success; every other *_IN_PROGRESS is a rollback
#: or a delete, which is a failure for whoever waits for a deployment.
PROGRESS_STATES = frozenset({
    "CREATE_IN_PROGRESS", "UPDATE_IN_PROGRESS", "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
    "IMPORT_IN_PROGRESS", "REVIEW_IN_PROGRESS",
})
CAPABILITIES = ["CAPABILITY_IAM"]


class _NotDescribed:
    """Default of ``stack=`` arguments: not described yet (``None`` means absent)."""


NOT_DESCRIBED = _NotDescribed()


def classify(status: str) -> State:
    """Whether ``status`` is a success, still in progress, or a failure.

    :param status: a CloudFormation ``StackStatus``.
    """
    if status in SUCCESS_STATES:
        return "success"
    if status in PROGRESS_STATES:
        return "in_progress"
    return "failed"


def state_of(stack: Mapping[str, Any], expected_fingerprint: str | None = None) -> State:
    """:func:`classify` of the stack's status, except that a stack rolled back to exactly
    what was wanted is a success.

    :param stack: a ``describe_stacks`` entry.
    :param expected_fingerprint: the :func:`fingerprint` of the wanted state; a stack in
        :data:`ROLLED_BACK_STATES` tagged with it serves what was wanted. ``None``: every
        rolled-back stack is a failure.
    """
    state = classify(stack["StackStatus"])
    if (state == "failed" and expected_fingerprint
            and stack["StackStatus"] in ROLLED_BACK_STATES
            and tags_of(stack).get(FINGERPRINT_TAG) == expected_fingerprint):
        return "success"
    return state


def _error_code(exc: Exception) -> tuple[str, str]:
    err = getattr(exc, "response", {}).get("Error", {})
    return str(err.get("Code", "")), str(err.get("Message", ""))


def _is_no_update(exc: Exception) -> bool:
    code, message = _error_code(exc)
    return code == "ValidationError" and "No updates are to be performed" in message


def _is_token_reused(exc: Exception) -> bool:
    return _error_code(exc)[0] == "TokenAlreadyExistsException"


def describe(cfn: Any, stack_name: str) -> dict[str, Any] | None:
    """The stack's description, or ``None`` when it does not exist.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name or id.
    """
    try:
        stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    except cfn.exceptions.ClientError as exc:
        if is_missing_stack(exc):
            return None
        raise
    return stacks[0] if stacks else None


def outputs_of(stack: Mapping[str, Any]) -> dict[str, str]:
    """The stack's outputs as ``{OutputKey: OutputValue}``.

    :param stack: a ``describe_stacks`` entry.
    """
    return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}


def raise_if_failed(cfn: Any, stack: Mapping[str, Any],
                    expected_fingerprint: str | None = None) -> None:
    """Raise :class:`StackFailedError` with the reason when the stack has failed.

    :param cfn: a boto3 CloudFormation client.
    :param stack: a ``describe_stacks`` entry.
    :param expected_fingerprint: see :func:`state_of`.
    """
    status = stack["StackStatus"]
    if state_of(stack, expected_fingerprint) == "failed":
        raise StackFailedError(stack["StackName"], status, stack.get("StackStatusReason"),
                               first_failed_event(cfn, stack.get("StackId", stack["StackName"])))


def summary(stack: Mapping[str, Any]) -> dict[str, Any]:
    """``stack_id``, ``stack_name``, ``stack_status``: the create contract but its fingerprint.

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
    expected_fingerprint: str | None = None,
) -> dict[str, Any]:
    """Poll until the stack succeeds; fail at the first failure state.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name or id.
    :param poll_interval: seconds between polls.
    :param max_attempts: polls before giving up.
    :param on_poll: called with each description (e.g. to log new events).
    :param expected_fingerprint: the wanted state; a stack rolled back to it succeeds
        (see :func:`state_of`).
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
        if state_of(stack, expected_fingerprint) == "success":
            return stack
        raise_if_failed(cfn, stack, expected_fingerprint)
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
    stack: Mapping[str, Any] | None | _NotDescribed = NOT_DESCRIBED,
) -> dict[str, Any]:
    """Create the stack, or bring an existing one to this template and parameters.

    The stack is tagged with the :func:`fingerprint` of what it is given
    (:data:`FINGERPRINT_TAG`). Safe to retry: a stack in progress is waited for (not
    created again), a stack in ROLLBACK_COMPLETE is deleted and recreated, and an update
    that changes nothing ("No updates are to be performed") counts as success: the stack,
    even one in UPDATE_ROLLBACK_COMPLETE, serves exactly what was asked.

    Each request carries its own ``ClientRequestToken`` (:func:`operation_token`): the
    run's token, the operation, the wanted state and the stack's starting state (id,
    last update or creation time, status). Resending the same request keeps its token;
    an attempt after the stack changed (e.g. after an update rolled back) gets a new one.
    A token CloudFormation already knows (TokenAlreadyExistsException) means an earlier
    request went through: success if the stack carries the wanted fingerprint.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name (already checked).
    :param template_url: the template's HTTPS S3 URL.
    :param parameters: CloudFormation parameters.
    :param tags: tags for the stack and its resources.
    :param on_exists: ``"update"`` (default), ``"skip"`` or ``"fail"`` (already checked,
        see :func:`tdv_airflow.core.validation.check_on_exists`).
    :param client_request_token: the run's idempotency token (``None``: none is sent).
    :param poll_interval: seconds between polls while waiting for a stack in progress.
    :param role_arn: a CloudFormation service role (``RoleARN``) that creates and updates
        the stack's resources instead of the caller (already checked).
    :param stack: the stack as the caller just described it (``None``: absent), so that
        it is not described twice; described here when not given.
    :returns: the create contract (``stack_id``, ``stack_name``, ``stack_status``,
        ``fingerprint``: of the state the stack is to reach, the one it has when skipped)
        plus ``operation`` (created, updated, update_failed, unchanged, skipped or
        recreated).
    :raises StackFailedError: when CloudFormation knows the token but the stack does not
        carry the wanted state, or the stack is in a failure state it cannot leave.
    """
    wanted = fingerprint(template_url, parameters, tags, role_arn)
    args: dict[str, Any] = {
        "StackName": stack_name, "TemplateURL": template_url, "Parameters": list(parameters),
        "Capabilities": CAPABILITIES,
        "Tags": [{"Key": k, "Value": str(v)}
                 for k, v in {**(tags or {}), FINGERPRINT_TAG: wanted}.items()],
    }
    if role_arn:
        args["RoleARN"] = role_arn

    def token(operation: str, start: Mapping[str, Any] | None) -> dict[str, str]:
        if not client_request_token:
            return {}
        state = ((start["StackId"], start.get("LastUpdatedTime") or start.get("CreationTime"),
                  start["StackStatus"]) if start is not None else ("absent",))
        return {"ClientRequestToken": operation_token(client_request_token, operation,
                                                      wanted, *state)}

    def result(stack: Mapping[str, Any] | None, operation: str,
               serves: str | None = wanted) -> dict[str, Any]:
        return {**summary(stack or {}), "fingerprint": serves, "operation": operation}

    stack = describe(cfn, stack_name) if isinstance(stack, _NotDescribed) else stack
    operation, start = "created", stack
    if stack is not None and classify(stack["StackStatus"]) == "in_progress":
        log.info("stack %s is %s: waiting for it before going on", stack_name,
                 stack["StackStatus"])
        stack = start = wait_for_stack(cfn, stack_name, poll_interval=poll_interval,
                                       expected_fingerprint=wanted)
    if stack is not None and stack["StackStatus"] in DEAD_END_STATES:
        log.warning("!!! stack %s is %s, from which CloudFormation allows only a delete: "
                    "DELETING it and creating it again", stack_name, stack["StackStatus"])
        failed = delete_and_wait(cfn, stack["StackId"], poll_interval)
        if failed is not None:
            raise StackFailedError(stack_name, "DELETE_FAILED", failed.get("StackStatusReason"),
                                   first_failed_event(cfn, stack["StackId"]))
        stack, operation = None, "recreated"
    if stack is None:
        sent = token(operation, start)
        try:
            stack_id = cfn.create_stack(**args, **sent, OnFailure="ROLLBACK")["StackId"]
        except cfn.exceptions.ClientError as exc:
            if not _is_token_reused(exc):
                raise
            return result(_already_sent(cfn, stack_name, wanted, sent), "unchanged")
        return result(describe(cfn, stack_id), operation)
    if on_exists == "skip":  # the stack stays as it is: expect what it serves
        return result(stack, "skipped", tags_of(stack).get(FINGERPRINT_TAG))
    if on_exists == "fail":
        raise StackExistsError(f"stack {stack_name!r} already exists ({stack['StackStatus']}) "
                               "and on_exists='fail'")
    if stack["StackStatus"] not in UPDATABLE_STATES:
        raise_if_failed(cfn, stack)
    sent = token("updated", stack)
    try:
        cfn.update_stack(**args, **sent)
    except cfn.exceptions.ClientError as exc:
        if _is_no_update(exc):
            log.info("stack %s (%s) already has this template, parameters and tags",
                     stack_name, stack["StackStatus"])
            return result(stack, "unchanged")
        if not _is_token_reused(exc):
            raise
        return result(_already_sent(cfn, stack_name, wanted, sent), "unchanged")
    after = describe(cfn, stack_name)
    failed_at_once = after is not None and state_of(after, wanted) == "failed"
    return result(after, "update_failed" if failed_at_once else "updated")


def _already_sent(cfn: Any, stack_name: str, wanted: str, sent: Mapping[str, str]
                  ) -> dict[str, Any]:
    """The stack an earlier request with the same token already brought to ``wanted``.

    :raises StackFailedError: when the stack does not carry ``wanted`` (or has failed).
    """
    stack = describe(cfn, stack_name)
    if stack is not None and tags_of(stack).get(FINGERPRINT_TAG) == wanted \
            and state_of(stack, wanted) != "failed":
        log.info("CloudFormation already received the request with this ClientRequestToken: "
                 "stack %s carries the wanted state (%s)", stack_name, stack["StackStatus"])
        return stack
    raise StackFailedError(
        stack_name, stack["StackStatus"] if stack else "absent",
        f"CloudFormation refused ClientRequestToken {sent.get('ClientRequestToken')!r} as "
        "already used (TokenAlreadyExistsException), yet the stack does not carry the "
        f"wanted state (fingerprint {wanted}); a new attempt gets a new token once the "
        "stack's state changes, or start a new run")


#: The stack tag holding :func:`fingerprint` of the template, parameters and tags last
#: applied, so that a retry can tell that its operation already went through.
FINGERPRINT_TAG = "tdv-airflow:fingerprint"


def fingerprint(template_url: str, parameters: Sequence[Mapping[str, str]],
                tags: Mapping[str, str] | None = None, role_arn: str | None = None) -> str:
    """A digest of everything a create or update would apply to a stack.

    Equal fingerprints mean the same template, parameters, tags and role; the stack is
    tagged with it (:data:`FINGERPRINT_TAG`) to recognise an operation that already went
    through, and a rolled-back stack that serves it (:func:`state_of`).

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
                 stack: Mapping[str, Any] | None | _NotDescribed = NOT_DESCRIBED
                 ) -> dict[str, Any] | None:
    """The stack if it already carries ``expected_fingerprint`` and is not failed.

    A retried task finds its own earlier create or update here (finished or in progress)
    and need not issue it again; a stack rolled back to exactly this state is returned too
    (:func:`state_of`); any other failed stack is not, so the normal path runs.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name.
    :param expected_fingerprint: what :func:`fingerprint` gives for the wanted state.
    :param stack: the stack as the caller just described it (``None``: absent); described
        here when not given.
    """
    stack = describe(cfn, stack_name) if isinstance(stack, _NotDescribed) else stack
    if stack is None or state_of(stack, expected_fingerprint) == "failed" \
            or tags_of(stack).get(FINGERPRINT_TAG) != expected_fingerprint:
        return None
    return dict(stack)
