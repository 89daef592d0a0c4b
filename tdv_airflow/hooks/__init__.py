"""Airflow hooks of tdv-airflow.

Loaded on first access: the hook module imports boto3 (through the Amazon provider),
which DAG files must not pay for at parse time.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tdv_airflow.hooks.deployment import TdvDeploymentHook

__all__ = ["TdvDeploymentHook"]

_LAZY = {"TdvDeploymentHook": "tdv_airflow.hooks.deployment"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tdv_airflow.hooks' has no attribute {name!r}")
