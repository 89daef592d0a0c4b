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
        "integrations": [{
            "integration-name": "tdv-airflow",
            "external-doc-url": "https://pypi.org/project/tdv-airflow/",
            "tags": ["aws"],
        }],
        "operators": [{"integration-name": "tdv-airflow",
                       "python-modules": ["tdv_airflow.operators.deployment"]}],
        "sensors": [{"integration-name": "tdv-airflow",
                     "python-modules": ["tdv_airflow.sensors.deployment"]}],
        "hooks": [{"integration-name": "tdv-airflow",
                   "python-modules": ["tdv_airflow.hooks.deployment"]}],
        "triggers": [{"integration-name": "tdv-airflow",
                      "python-modules": ["tdv_airflow.triggers.deployment"]}],
        # The hook uses the Amazon provider's "aws" connection type: none of its own.
        "hook-class-names": [],
        "connection-types": [],
        "extra-links": ["tdv_airflow.links.CloudFormationStackLink",
                        "tdv_airflow.links.ApiEndpointLink"],
    }
