"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """What ``airflow providers list`` shows for tdv-airflow."""
    from tdv_airflow import __version__

    return {
        "package-name": "tdv-airflow",
        "name": "tdv-airflow",
        "description": "Deploy a trained ML model as a live HTTPS endpoint "
                       "(AWS Lambda + API Gateway, one CloudFormation stack).",
        "versions": [__version__],
        "hook-class-names": [],
        "connection-types": [],
        "extra-links": [],
    }
