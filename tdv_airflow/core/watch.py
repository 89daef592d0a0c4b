"""One poll of a stack being deployed: the step the sensor and the trigger share.

:func:`poll_stack` describes the stack once and says where it stands, as a
:class:`StackPoll`: still missing (within the grace period) or gone for good, in
progress, succeeded (with the sensor contract), or failed (with the status, its reason
and the first failed resource). Given the fingerprint of the wanted state (the create
contract's ``fingerprint``), a stack that rolled back to exactly that state is a success
(:func:`tdv_airflow.core.stacks.state_of`), while one whose own update rolled back is a
failure. It also returns the stack events that arrived since the last poll, as log
lines. It neither sleeps, logs nor raises on a stack state: the caller (a poking sensor,
a trigger on the triggerer) decides how to wait and how to fail.
Framework-free: knows boto3 clients, never Airflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tdv_airflow.core import stacks
from tdv_airflow.core.stack_events import EventTail, first_failed_event, format_event
from tdv_airflow.exceptions import InvalidInputError, StackFailedError, StackNotFoundError

#: Where a stack stands after one poll: ``missing`` (absent, still within the grace
#: period), ``not_found`` (absent after it), ``in_progress``, ``success`` or ``failed``.
PollState = Literal["missing", "not_found", "in_progress", "success", "failed"]


@dataclass(frozen=True)
class StackPoll:
    """The outcome of one :func:`poll_stack`.

    :param state: where the stack stands (see :data:`PollState`).
    :param stack_name: the name (or id) that was polled.
    :param status: the stack's ``StackStatus`` (``None`` when it is absent).
    :param stack_id: the stack's id (``None`` when it is absent).
    :param result: on success, the sensor contract
        (:func:`tdv_airflow.core.deployment.endpoint_of`).
    :param error: on failure, the keyword arguments of
        :class:`~tdv_airflow.exceptions.StackFailedError` (``stack_name``, ``status``,
        ``reason``, ``failed_event``): JSON, so a trigger can send it.
    :param events: the stack events that arrived since the last poll, oldest first,
        one log line each.
    """

    state: PollState
    stack_name: str
    status: str | None = None
    stack_id: str | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    events: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        """Whether waiting is over (success, failure, or a stack that never came)."""
        return self.state in ("success", "failed", "not_found")

    @property
    def message(self) -> str:
        """One line saying where the stack stands."""
        if self.state == "missing":
            return f"stack {self.stack_name!r} does not exist (yet)"
        if self.state == "not_found":
            return str(StackNotFoundError(self.stack_name))
        if self.state == "failed" and self.error is not None:
            return str(StackFailedError(**self.error))
        return f"stack {self.stack_name!r} is {self.status}"

    def raise_for_state(self) -> None:
        """Raise the error of a failed or never-found stack; nothing otherwise.

        :raises StackFailedError: on a failure state (status, reason, first failed resource).
        :raises StackNotFoundError: when the stack stayed absent past the grace period.
        """
        if self.state == "failed" and self.error is not None:
            raise StackFailedError(**self.error)
        if self.state == "not_found":
            raise StackNotFoundError(self.stack_name)


def _failure(cfn: Any, stack: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`StackFailedError` arguments of a failed stack."""
    return {"stack_name": stack["StackName"], "status": stack["StackStatus"],
            "reason": stack.get("StackStatusReason"),
            "failed_event": first_failed_event(cfn, stack["StackId"])}


def check_fingerprint(value: Any, name: str = "expected_fingerprint") -> str | None:
    """Return ``value`` if it is a fingerprint (64 hex digits) or empty (``None``).

    :param value: e.g. the ``fingerprint`` of CreateStackOperator's result.
    :param name: the argument's name, for the message.
    :raises InvalidInputError: otherwise, naming the value.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise InvalidInputError(
            f"{name} must be the 'fingerprint' of the create step's result (64 hex digits, "
            f"e.g. create.output['fingerprint']) or None, got {value!r}")
    return value


def poll_stack(cfn: Any, stack_name: str, tail: EventTail | None, *, waited: float,
               not_found_grace_period: float,
               expected_fingerprint: str | None = None) -> StackPoll:
    """Describe the stack once and classify it (:func:`tdv_airflow.core.stacks.state_of`).

    :param cfn: a boto3 CloudFormation client.
    :param stack_name: the stack name or id.
    :param tail: follows the stack's events (its new events become
        :attr:`StackPoll.events`); ``None`` reads no events.
    :param waited: seconds since the caller began waiting for this stack.
    :param not_found_grace_period: seconds an absent stack is waited for (it may not be
        created yet); once ``waited`` reaches it, an absent stack is ``not_found``.
    :param expected_fingerprint: the wanted state; a stack in UPDATE_ROLLBACK_COMPLETE (or
        IMPORT_ROLLBACK_COMPLETE) tagged with it serves it and is a success. ``None``:
        every rolled-back stack is a failure.
    """
    from tdv_airflow.core.deployment import endpoint_of

    stack = stacks.describe(cfn, stack_name)
    if stack is None:
        state: PollState = "missing" if waited < not_found_grace_period else "not_found"
        return StackPoll(state, stack_name)
    events = tuple(format_event(e) for e in tail.poll()) if tail is not None else ()
    status = str(stack["StackStatus"])
    found = {"stack_name": stack_name, "status": status, "stack_id": stack["StackId"],
             "events": events}
    state = stacks.state_of(stack, expected_fingerprint)
    if state == "success":
        return StackPoll("success", result=endpoint_of(stack), **found)
    if state == "failed":
        return StackPoll("failed", error=_failure(cfn, stack), **found)
    return StackPoll("in_progress", **found)
