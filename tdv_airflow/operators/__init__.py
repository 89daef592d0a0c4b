"""Airflow operators of tdv-airflow (cheap to import: no boto3 until a task runs).

May import ``tdv_airflow.core`` (inside ``execute``), ``tdv_airflow.links`` and, for the
endpoint check only, ``tdv_airflow.endpoint`` and ``tdv_airflow.local`` (inside
``execute``).
"""

from __future__ import annotations

from tdv_airflow.operators.deployment import CreateStackOperator, PrepareDeploymentOperator
from tdv_airflow.operators.endpoint import EndpointCheckOperator
from tdv_airflow.operators.promote import PromoteOperator
from tdv_airflow.operators.rollout import RollbackOperator, ValidateCandidateOperator
from tdv_airflow.operators.teardown import DeleteStackOperator, RetireVersionsOperator

__all__ = ["CreateStackOperator", "DeleteStackOperator", "EndpointCheckOperator",
           "PrepareDeploymentOperator", "PromoteOperator", "RetireVersionsOperator",
           "RollbackOperator", "ValidateCandidateOperator"]
