"""The trigger that waits on the triggerer for a stack to be deleted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from tdv_airflow.triggers.base import StackTriggerBase

#: ``status`` values of the events this trigger yields.
DELETED, DELETE_FAILED, TIMEOUT = "deleted", "delete_failed", "timeout"


class StackDeletedTrigger(StackTriggerBase):
    """Fire once the stack is gone (absent or DELETE_COMPLETE), DELETE_FAILED, or the
    attempts run out.

    The payload is ``{"status": ..., "stack_name": ..., "stack_id": ..., "message": ...}``.
    It only watches: the delete request is sent by the task before it defers (and again,
    once, after a DELETE_FAILED).

    :param stack_name: the stack name or, better, its id (a deleted stack's name no
        longer resolves, its id does).
    :param poll_interval: seconds between polls.
    :param max_attempts: polls before giving up.
    :param connection: the connection arguments of
        :class:`~tdv_airflow.triggers.base.StackTriggerBase`.
    """

    def __init__(
        self,
        *,
        stack_name: str,
        poll_interval: float = 30.0,
        max_attempts: int = 120,
        **connection: Any,
    ) -> None:
        super().__init__(stack_name=stack_name, poll_interval=poll_interval, **connection)
        self.max_attempts = max_attempts

    def own_kwargs(self) -> dict[str, Any]:
        """This trigger's own constructor arguments."""
        return {"max_attempts": self.max_attempts}

    def _status(self, cfn: Any) -> str:
        from tdv_airflow.core.stacks import describe

        stack = describe(cfn, self.stack_name)
        return "DELETE_COMPLETE" if stack is None else str(stack["StackStatus"])

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the stack is gone or its delete failed; yield one event."""
        cfn = await asyncio.to_thread(self._cloudformation)
        base = {"stack_name": self.stack_name}
        for attempt in range(1, self.max_attempts + 1):
            status = await asyncio.to_thread(self._status, cfn)
            if status == "DELETE_COMPLETE":
                yield TriggerEvent({**base, "status": DELETED,
                                    "message": f"stack {self.stack_name!r} is deleted"})
                return
            if status == "DELETE_FAILED":
                yield TriggerEvent({**base, "status": DELETE_FAILED,
                                    "message": f"stack {self.stack_name!r} is DELETE_FAILED"})
                return
            self.log.info("stack %s is %s (poll %d)", self.stack_name, status, attempt)
            await asyncio.sleep(self.poll_interval)
        yield TriggerEvent({**base, "status": TIMEOUT, "message": (
            f"stack {self.stack_name!r} was not deleted after {self.max_attempts} polls "
            f"{self.poll_interval} s apart")})
