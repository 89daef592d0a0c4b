"""A stand-in for the running task instance, for unit-level ``execute`` calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeTaskInstance:
    """The few task-instance members the operators use, recording XCom pushes."""

    dag_id: str = "tdv_test_dag"
    task_id: str = "task"
    run_id: str = "manual__2025-01-01T02:00:00+00:00"
    try_number: int = 1
    xcoms: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def xcom_pull(self, task_ids: str | None = None, key: str = "return_value") -> Any:
        """What this task pushed under ``key`` (the tests' tasks pull only their own)."""
        return self.xcoms.get(key)

    def get_first_reschedule_date(self, context: Any) -> None:
        return None
