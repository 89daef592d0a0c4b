"""Airflow triggers of tdv-airflow (they run on the triggerer for deferrable tasks)."""

from __future__ import annotations

from tdv_airflow.triggers.deployment import StackStatusTrigger
from tdv_airflow.triggers.rollout import BakeTrigger
from tdv_airflow.triggers.teardown import StackDeletedTrigger

__all__ = ["BakeTrigger", "StackDeletedTrigger", "StackStatusTrigger"]
