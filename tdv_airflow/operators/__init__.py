"""Airflow operators of tdv-airflow (cheap to import: no boto3 until a task runs)."""

from __future__ import annotations

from tdv_airflow.operators.deployment import CreateStackOperator, PrepareDeploymentOperator
from tdv_airflow.operators.teardown import DeleteStackOperator

__all__ = ["CreateStackOperator", "DeleteStackOperator", "PrepareDeploymentOperator"]
