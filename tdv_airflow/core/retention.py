"""Teardown and retention of deployment stacks.

:func:`teardown` deletes a stack and waits, treats an absent stack as success, retries a
DELETE_FAILED once and then fails naming the resources left behind. :func:`retire`
deletes the per-version stacks of a deployment (:func:`deployment_stacks`) so that only
the newest N remain.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Mapping
from typing import Any

from tdv_airflow.core.stacks import delete_and_wait, describe, tags_of
from tdv_airflow.exceptions import InvalidInputError, StackFailedError

log = logging.getLogger(__name__)

#: Tag every tdv-airflow stack carries: the deployment (model) it serves.
DEPLOYMENT_TAG = "tdv-airflow:deployment"


def resources_left(cfn: Any, stack_id: str) -> list[str]:
    """The resources of a stack not yet deleted, one line each (logical id, type,
    physical id, reason).

    :param cfn: a boto3 CloudFormation client.
    :param stack_id: the stack id (or name).
    """
    try:
        resources = cfn.describe_stack_resources(StackName=stack_id)["StackResources"]
    except cfn.exceptions.ClientError:
        return []
    return [f"{r['LogicalResourceId']} ({r['ResourceType']}, {r.get('PhysicalResourceId')}): "
            f"{r.get('ResourceStatusReason', r['ResourceStatus'])}"
            for r in resources if r["ResourceStatus"] != "DELETE_COMPLETE"]


def teardown(cfn: Any, stack_name: str, poll_interval: float = 5.0,
             max_attempts: int = 360) -> dict[str, Any]:
    """Delete a stack and wait for it to go.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name or id.
    :param poll_interval: seconds between polls.
    :param max_attempts: polls per delete attempt.
    :returns: ``stack_name``, ``deleted`` (False when there was no stack) and
        ``stack_status``.
    :raises StackFailedError: when the delete fails twice, naming what is left.
    """
    stack = describe(cfn, stack_name)
    if stack is None or stack["StackStatus"] == "DELETE_COMPLETE":
        log.info("stack %s does not exist: nothing to delete", stack_name)
        return {"stack_name": stack_name, "deleted": False, "stack_status": "DELETE_COMPLETE"}
    stack_id = stack["StackId"]
    for attempt in (1, 2):
        if delete_and_wait(cfn, stack_id, poll_interval, max_attempts) is None:
            return {"stack_name": stack_name, "deleted": True,
                    "stack_status": "DELETE_COMPLETE"}
        log.warning("delete of stack %s failed (attempt %d of 2)", stack_name, attempt)
    left = resources_left(cfn, stack_id)
    raise StackFailedError(stack_name, "DELETE_FAILED", "deleted twice without success",
                           "; ".join(left) or None)


def _all_stacks(cfn: Any) -> Iterator[Mapping[str, Any]]:
    for page in cfn.get_paginator("describe_stacks").paginate():
        yield from page["Stacks"]


def deployment_stacks(cfn: Any, deployment: str) -> list[Mapping[str, Any]]:
    """Live stacks tagged with ``deployment``, newest first.

    :param cfn: a boto3 CloudFormation client.
    :param deployment: the value of the ``tdv-airflow:deployment`` tag.
    """
    found = [
        s for s in _all_stacks(cfn)
        if s["StackStatus"] != "DELETE_COMPLETE"
        and tags_of(s).get(DEPLOYMENT_TAG) == deployment
    ]
    return sorted(found, key=lambda s: (s["CreationTime"], s["StackName"]), reverse=True)


def retire(cfn: Any, deployment: str, keep: int, poll_interval: float = 5.0,
           max_attempts: int = 360, exclude: Collection[str] = ()) -> list[str]:
    """Delete the stacks of ``deployment`` beyond the newest ``keep``; their names.

    Each is deleted with :func:`teardown` (absent = success, one retry of a
    DELETE_FAILED); the names are returned newest first.

    :param cfn: a boto3 CloudFormation client.
    :param deployment: the value of the ``tdv-airflow:deployment`` tag.
    :param keep: how many of the newest stacks to keep (at least 1).
    :param poll_interval: seconds between polls of each delete.
    :param max_attempts: polls per delete attempt.
    :param exclude: stacks never counted nor deleted, e.g. the deployment's stable stack
        (it carries the same tag as the per-version ones).
    :raises StackFailedError: when a stack cannot be deleted (the others are still tried).
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidInputError(f"keep must be a whole number of stacks >= 1, got {keep!r}")
    retired = [s["StackName"] for s in deployment_stacks(cfn, deployment)
               if s["StackName"] not in set(exclude)][keep:]
    errors: list[str] = []
    for name in retired:
        try:
            teardown(cfn, name, poll_interval=poll_interval, max_attempts=max_attempts)
            log.info("retired stack %s of deployment %s", name, deployment)
        except StackFailedError as exc:
            errors.append(str(exc))
    if errors:
        raise StackFailedError(deployment, "partly retired", "; ".join(errors))
    return retired
