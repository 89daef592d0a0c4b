"""The trigger that waits for a deployment stack on the triggerer.

Each poll is the sensor's own step, :func:`tdv_airflow.core.watch.poll_stack` (describe,
grace period for a missing stack, new events, classification), so a failure or rollback
ends the wait at once instead of after a whole rollback. boto3 calls run in a worker thread
(:func:`asyncio.to_thread`) one poll at a time, so the triggerer's event loop never
blocks and a cancelled trigger stops at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from airflow.triggers.base import TriggerEvent

from tdv_airflow.exceptions import StackFailedError, StackNotFoundError, StackTimeoutError
from tdv_airflow.triggers.base import StackTriggerBase

#: ``status`` values of the events this trigger yields.
SUCCESS, FAILED, NOT_FOUND, TIMEOUT = "success", "failed", "not_found", "timeout"


class StackStatusTrigger(StackTriggerBase):
    """Fire once the stack succeeds, fails, stays absent, or the attempts run out.

    The event's payload is ``{"status": ..., "message": ..., "stack": ...}`` where
    ``stack`` (on success) is the sensor contract of
    :func:`tdv_airflow.core.deployment.endpoint_of`, and ``fingerprint`` the expected
    one. Turn it into a result or an exception with :func:`result_from_event`. Each poll
    is :func:`tdv_airflow.core.watch.poll_stack`, the sensor's own step.

    :param stack_name: the stack name or id.
    :param poll_interval: seconds between polls.
    :param max_attempts: polls before giving up; ``None`` waits until the task's own
        deferral timeout.
    :param not_found_grace_period: seconds a missing stack is waited for before failing.
    :param after_event_id: the last stack event the task already logged; later ones are
        logged as they arrive.
    :param expected_fingerprint: the wanted state (the create contract's
        ``fingerprint``): a stack rolled back to exactly it is a success; ``None``: every
        rolled-back stack is a failure.
    :param connection: the connection arguments of :class:`StackTriggerBase`.
    """

    def __init__(
        self,
        *,
        stack_name: str,
        poll_interval: float = 30.0,
        max_attempts: int | None = None,
        not_found_grace_period: float = 0.0,
        after_event_id: str | None = None,
        expected_fingerprint: str | None = None,
        **connection: Any,
    ) -> None:
        super().__init__(stack_name=stack_name, poll_interval=poll_interval, **connection)
        self.max_attempts = max_attempts
        self.not_found_grace_period = not_found_grace_period
        self.after_event_id = after_event_id
        self.expected_fingerprint = expected_fingerprint

    def own_kwargs(self) -> dict[str, Any]:
        """This trigger's own constructor arguments."""
        return {"max_attempts": self.max_attempts,
                "not_found_grace_period": self.not_found_grace_period,
                "after_event_id": self.after_event_id,
                "expected_fingerprint": self.expected_fingerprint}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the stack reaches a final state; yield one event."""
        from tdv_airflow.core.stack_events import EventTail

        cfn = await asyncio.to_thread(self._cloudformation)
        tail = EventTail(cfn, self.stack_name, after_event_id=self.after_event_id)
        started, attempt = time.monotonic(), 0
        while True:
            attempt += 1
            payload = await asyncio.to_thread(self._check, cfn, tail,
                                              time.monotonic() - started)
            if payload is None and self.max_attempts is not None \
                    and attempt >= self.max_attempts:
                payload = {"status": TIMEOUT, "message": (
                    f"stack {self.stack_name!r} did not reach a final state in {attempt} "
                    f"polls {self.poll_interval} s apart")}
            if payload is not None:
                yield TriggerEvent(payload)
                return
            await asyncio.sleep(self.poll_interval)

    def _check(self, cfn: Any, tail: Any, waited: float) -> dict[str, Any] | None:
        """One poll (blocking; runs in a worker thread): the event payload, or ``None``."""
        from tdv_airflow.core.watch import poll_stack

        poll = poll_stack(cfn, self.stack_name, tail, waited=waited,
                          not_found_grace_period=self.not_found_grace_period,
                          expected_fingerprint=self.expected_fingerprint)
        for line in poll.events:
            self.log.info("stack event: %s", line)
        self.log.info("%s", poll.message)
        if poll.state == "success":
            return {"status": SUCCESS, "stack": poll.result, "message": poll.message,
                    "fingerprint": self.expected_fingerprint}
        if poll.state == "failed":
            return {"status": FAILED, "error": poll.error, "message": poll.message}
        if poll.state == "not_found":
            return {"status": NOT_FOUND, "stack_name": self.stack_name,
                    "message": poll.message}
        return None


def result_from_event(event: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stack contract of a success event; raise the matching error otherwise.

    :param event: the payload a :class:`StackStatusTrigger` yielded.
    :raises StackFailedError: on a failure state (status, reason, first failed resource).
    :raises StackNotFoundError: when the stack stayed absent.
    :raises StackTimeoutError: when the attempts ran out (or the event is malformed).
    """
    event = event or {}
    status = event.get("status")
    if status == SUCCESS:
        return dict(event["stack"])
    if status == FAILED:
        raise StackFailedError(**event["error"])
    if status == NOT_FOUND:
        raise StackNotFoundError(event["stack_name"])
    raise StackTimeoutError(str(event.get("message") or f"unexpected trigger event {event!r}"))
