"""Airflow sensors of tdv-airflow (cheap to import: no boto3 until a task runs)."""

from __future__ import annotations

from tdv_airflow.sensors.deployment import StackStatusSensor

__all__ = ["StackStatusSensor"]
