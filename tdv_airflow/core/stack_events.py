"""A stack's events: follow them as they arrive, format them, find the failure of the
latest operation.

Framework-free: knows boto3 clients, never Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def is_missing_stack(exc: Exception) -> bool:
    """The one place that recognises CloudFormation's "stack does not exist" error.

    :param exc: a botocore ``ClientError``.
    """
    err = getattr(exc, "response", {}).get("Error", {})
    return err.get("Code") == "ValidationError" and "does not exist" in err.get("Message", "")


def first_failed_event(cfn: Any, stack_name: str) -> str | None:
    """The earliest resource failure of the stack's latest operation, as one line.

    Only the events back to that operation's "User Initiated" start count, so a stack
    whose earlier update failed and that failed again names the new failure.

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name or id.
    """
    try:
        events = cfn.describe_stack_events(StackName=stack_name).get("StackEvents", [])
    except cfn.exceptions.ClientError:
        return None
    failed: list[Mapping[str, Any]] = []
    for event in events:  # newest first
        if str(event.get("ResourceStatus", "")).endswith("_FAILED") \
                and event.get("ResourceType") != "AWS::CloudFormation::Stack":
            failed.append(event)
        if is_operation_start(event):
            break
    if not failed:
        return None
    e = failed[-1]
    return (f"{e.get('LogicalResourceId')} ({e.get('ResourceType')}) {e.get('ResourceStatus')}: "
            f"{e.get('ResourceStatusReason', 'no reason given')}")


def format_event(event: Mapping[str, Any]) -> str:
    """One stack event as a log line.

    :param event: a ``describe_stack_events`` entry.
    """
    line = (f"{event.get('Timestamp')} {event.get('LogicalResourceId')} "
            f"({event.get('ResourceType')}) {event.get('ResourceStatus')}")
    reason = event.get("ResourceStatusReason")
    return f"{line}: {reason}" if reason else line


def is_operation_start(event: Mapping[str, Any]) -> bool:
    """Whether ``event`` starts a stack operation (the stack's "User Initiated" event).

    :param event: a ``describe_stack_events`` entry.
    """
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
            if is_missing_stack(exc):
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
            if self._last_id is None and self._not_before is None and is_operation_start(event):
                return True
        return False
