"""Teardown and retention of deployment stacks.

``teardown`` deletes a stack and waits, treats an absent stack as success, retries a
DELETE_FAILED once and then fails naming the resources left behind. ``retired_stacks``
picks the per-version stacks to delete so that only the newest N remain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

from tdv_airflow.exceptions import InvalidInputError, StackFailedError, StackTimeoutError
from tdv_airflow.stacks import describe

log = logging.getLogger(__name__)

#: Tag every tdv-airflow stack carries: the deployment (model) it serves.
DEPLOYMENT_TAG = "tdv-airflow:deployment"


def _resources_left(cfn: Any, stack_id: str) -> list[str]:
    try:
        resources = cfn.describe_stack_resources(StackName=stack_id)["StackResources"]
    except cfn.exceptions.ClientError:
        return []
    return [f"{r['LogicalResourceId']} ({r['ResourceType']}, {r.get('PhysicalResourceId')}): "
            f"{r.get('ResourceStatusReason', r['ResourceStatus'])}"
            for r in resources if r["ResourceStatus"] != "DELETE_COMPLETE"]


def _delete_once(cfn: Any, stack_id: str, poll_interval: float, max_attempts: int) -> str:
    """Ask for the delete and poll; returns DELETE_COMPLETE or DELETE_FAILED."""
    cfn.delete_stack(StackName=stack_id)
    for _ in range(max_attempts):
        stack = describe(cfn, stack_id)
        status = "DELETE_COMPLETE" if stack is None else stack["StackStatus"]
        if status in {"DELETE_COMPLETE", "DELETE_FAILED"}:
            return status
        time.sleep(poll_interval)
    raise StackTimeoutError(f"stack {stack_id!r} was not deleted after {max_attempts} polls "
                            f"{poll_interval} s apart")


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
        status = _delete_once(cfn, stack_id, poll_interval, max_attempts)
        if status == "DELETE_COMPLETE":
            return {"stack_name": stack_name, "deleted": True, "stack_status": status}
        log.warning("delete of stack %s failed (attempt %d of 2)", stack_name, attempt)
    left = _resources_left(cfn, stack_id)
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
        and {t["Key"]: t["Value"] for t in s.get("Tags") or []}.get(DEPLOYMENT_TAG) == deployment
    ]
    return sorted(found, key=lambda s: (s["CreationTime"], s["StackName"]), reverse=True)


def retired_stacks(cfn: Any, deployment: str, keep: int) -> list[str]:
    """Names of the stacks of ``deployment`` beyond the newest ``keep``.

    :param cfn: a boto3 CloudFormation client.
    :param deployment: the value of the ``tdv-airflow:deployment`` tag.
    :param keep: how many of the newest stacks to keep (at least 1).
    """
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InvalidInputError(f"keep must be a whole number of stacks >= 1, got {keep!r}")
    return [s["StackName"] for s in deployment_stacks(cfn, deployment)[keep:]]
