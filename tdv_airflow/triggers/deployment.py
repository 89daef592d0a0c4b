"""The trigger that waits for a deployment stack on the triggerer.

It polls ``describe_stacks`` with the same classification as the sensor
(:func:`tdv_airflow.core.stacks.classify`), so a failure or rollback ends the wait at once
instead of after a whole rollback. boto3 calls run in a worker thread
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
    :func:`tdv_airflow.core.deployment.endpoint_of`. Turn it into a result or an exception
    with :func:`result_from_event`.

    :param stack_name: the stack name or id.
    :param poll_interval: seconds between polls.
    :param max_attempts: polls before giving up; ``None`` waits until the task's own
        deferral timeout.
    :param not_found_grace_period: seconds a missing stack is waited for before failing.
    :param after_event_id: the last stack event the task already logged; later ones are
        logged as they arrive.
    :param aws_conn_id: the Airflow AWS connection.
    :param region_name: the region (the connection's when ``None``).
    :param verify: TLS verification setting of the hook.
    :param botocore_config: botocore client configuration as a dict.
    """

    def __init__(
        self,
        *,
        stack_name: str,
        poll_interval: float = 30.0,
        max_attempts: int | None = None,
        not_found_grace_period: float = 0.0,
        after_event_id: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(stack_name=stack_name, poll_interval=poll_interval,
                         aws_conn_id=aws_conn_id, region_name=region_name, verify=verify,
                         botocore_config=botocore_config)
        self.max_attempts = max_attempts
        self.not_found_grace_period = not_found_grace_period
        self.after_event_id = after_event_id

    def own_kwargs(self) -> dict[str, Any]:
        """This trigger's own constructor arguments."""
        return {"max_attempts": self.max_attempts,
                "not_found_grace_period": self.not_found_grace_period,
                "after_event_id": self.after_event_id}

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the stack reaches a final state; yield one event."""
        from tdv_airflow.core import stacks

        cfn = await asyncio.to_thread(self._cloudformation)
        tail = stacks.EventTail(cfn, self.stack_name, after_event_id=self.after_event_id)
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

    def _check(self, cfn: Any, tail: Any, elapsed: float) -> dict[str, Any] | None:
        """One poll (blocking; runs in a worker thread): the event payload, or ``None``."""
        from tdv_airflow.core import deployment, stacks

        stack = stacks.describe(cfn, self.stack_name)
        if stack is None:
            if elapsed < self.not_found_grace_period:
                self.log.info("stack %s does not exist (yet)", self.stack_name)
                return None
            return {"status": NOT_FOUND, "stack_name": self.stack_name,
                    "message": str(StackNotFoundError(self.stack_name))}
        for event in tail.poll():
            self.log.info("stack event: %s", stacks.format_event(event))
        status = stack["StackStatus"]
        state = stacks.classify(status)
        if state == "success":
            return {"status": SUCCESS, "stack": deployment.endpoint_of(stack),
                    "message": f"stack {self.stack_name!r} is {status}"}
        if state == "failed":
            error = {"stack_name": stack["StackName"], "status": status,
                     "reason": stack.get("StackStatusReason"),
                     "failed_event": stacks.first_failed_event(cfn, stack["StackId"])}
            return {"status": FAILED, "error": error,
                    "message": str(StackFailedError(**error))}
        self.log.info("stack %s is %s", self.stack_name, status)
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
