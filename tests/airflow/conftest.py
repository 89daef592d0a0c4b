"""Fixtures of the Airflow-layer tests: task contexts and direct ``execute`` calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from testkit.task_context import FakeTaskInstance


@pytest.fixture
def task_context() -> Callable[..., dict[str, Any]]:
    """Build a minimal task context for unit-level ``execute`` calls."""

    def make(ti: FakeTaskInstance | None = None, **extra: Any) -> dict[str, Any]:
        ti = ti or FakeTaskInstance()
        return {"ti": ti, "run_id": ti.run_id, "dag_id": ti.dag_id, "params": {},
                "task_reschedule_count": 0, **extra}

    return make


@pytest.fixture(autouse=True)
def _allow_direct_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let tests call ``execute`` outside the task runner (Airflow's unit-test mode)."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)
