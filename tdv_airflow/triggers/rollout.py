"""The trigger that watches a bake on the triggerer: alarms until the step's end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import TriggerEvent

from tdv_airflow.triggers.base import StackTriggerBase

#: ``status`` values of the events this trigger yields.
BAKED, ALARM = "baked", "alarm"


class BakeTrigger(StackTriggerBase):
    """Fire when the bake of a promotion step ends, or as soon as a watched alarm is in
    ALARM. It only watches: the task that resumes moves the alias (on, or back).

    The payload is ``{"status": "baked"|"alarm", "stack_name", "alarms": [...]}``.

    :param stack_name: the stack being promoted.
    :param alarm_names: the alarms to watch.
    :param until: when the bake ends (epoch seconds).
    :param poll_interval: seconds between alarm reads.
    :param connection: the connection arguments of
        :class:`~tdv_airflow.triggers.base.StackTriggerBase`.
    """

    def __init__(self, *, stack_name: str, alarm_names: list[str], until: float,
                 poll_interval: float = 30.0, **connection: Any) -> None:
        super().__init__(stack_name=stack_name, poll_interval=poll_interval, **connection)
        self.alarm_names = list(alarm_names)
        self.until = float(until)

    def own_kwargs(self) -> dict[str, Any]:
        """This trigger's own constructor arguments."""
        return {"alarm_names": self.alarm_names, "until": self.until}

    def _firing(self) -> list[dict[str, str]]:
        from tdv_airflow.core.alarms import firing

        if not self.alarm_names:
            return []
        return firing(self.connection_hook().get_client("cloudwatch"), self.alarm_names)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Read the alarms every ``poll_interval`` until one fires or the bake ends."""
        base = {"stack_name": self.stack_name}
        while True:
            alarms = await asyncio.to_thread(self._firing)
            if alarms:
                yield TriggerEvent({**base, "status": ALARM, "alarms": alarms})
                return
            left = self.until - time.time()
            if left <= 0:
                yield TriggerEvent({**base, "status": BAKED, "alarms": []})
                return
            self.log.info("baking %s: no alarm, %.0f s left", self.stack_name, left)
            await asyncio.sleep(min(self.poll_interval, left))
