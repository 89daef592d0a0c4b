"""tdv-airflow: ship a trained model as a live HTTPS endpoint (Lambda + API Gateway).

Cheap to import: the public names below are loaded on first access.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Deploy": "tdv_airflow.deploy",
    "UserAwsAuth": "tdv_airflow.core.clients",
}

if TYPE_CHECKING:
    from tdv_airflow.core.clients import UserAwsAuth
    from tdv_airflow.deploy import Deploy

__all__ = ["Deploy", "UserAwsAuth", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tdv_airflow' has no attribute {name!r}")
