"""Airflow triggers of tdv-airflow (they run on the triggerer for deferrable tasks)."""

from __future__ import annotations

from tdv_airflow.triggers.deployment import StackStatusTrigger

__all__ = ["StackStatusTrigger"]
