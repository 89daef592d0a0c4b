"""Provider metadata read by Airflow through the ``apache_airflow_provider`` entry point,
and the provider's configuration section (``[tdv_airflow]``, shown by ``airflow config list``).
"""

from __future__ import annotations

from typing import Any

#: The provider's section of the Airflow configuration (``AIRFLOW__TDV_AIRFLOW__<OPTION>``).
CONFIG_SECTION = "tdv_airflow"
#: Default seconds between two polls of a stack.
DEFAULT_POLL_INTERVAL = 30.0
#: The modes a :class:`~tdv_airflow.sensors.StackStatusSensor` may wait in.
SENSOR_MODES = ("poke", "reschedule")

_CONFIG_OPTIONS: dict[str, dict[str, Any]] = {
    "poll_interval": {
        "description": "Seconds between two polls of a CloudFormation stack: the default "
                       "``poll_interval`` of CreateStackOperator, DeleteStackOperator and "
                       "RetireVersionsOperator, and the default ``poke_interval`` of "
                       "StackStatusSensor. A number above 0.\n",
        "version_added": "0.1.0",
        "type": "float",
        "example": "10",
        "default": str(int(DEFAULT_POLL_INTERVAL)),
    },
    "sensor_mode": {
        "description": "The default ``mode`` of StackStatusSensor: ``poke`` (holds a worker "
                       "slot between polls) or ``reschedule`` (frees it). "
                       "``[operators] default_deferrable`` makes it wait on the triggerer "
                       "instead.\n",
        "version_added": "0.1.0",
        "type": "string",
        "example": "reschedule",
        "default": SENSOR_MODES[0],
    },
}


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
                       "python-modules": ["tdv_airflow.operators.deployment",
                                          "tdv_airflow.operators.teardown",
                                          "tdv_airflow.operators.endpoint",
                                          "tdv_airflow.operators.rollout",
                                          "tdv_airflow.operators.promote"]}],
        "sensors": [{"integration-name": "tdv-airflow",
                     "python-modules": ["tdv_airflow.sensors.deployment"]}],
        "hooks": [{"integration-name": "tdv-airflow",
                   "python-modules": ["tdv_airflow.hooks.deployment"]}],
        "triggers": [{"integration-name": "tdv-airflow",
                      "python-modules": ["tdv_airflow.triggers.deployment",
                                         "tdv_airflow.triggers.teardown",
                                         "tdv_airflow.triggers.rollout"]}],
        # The hook uses the Amazon provider's "aws" connection type: none of its own.
        "hook-class-names": [],
        "connection-types": [],
        # the endpoint's asset URI, tdv-endpoint://{region}/{stack} (tdv_airflow.assets)
        "asset-uris": [{"schemes": ["tdv-endpoint"],
                        "handler": "tdv_airflow.assets.sanitize_endpoint_uri"}],
        "extra-links": ["tdv_airflow.links.CloudFormationStackLink",
                        "tdv_airflow.links.ApiEndpointLink"],
        "config": {CONFIG_SECTION: {
            "description": "Defaults of the tdv-airflow tasks (each task argument given "
                           "explicitly wins).",
            "options": _CONFIG_OPTIONS,
        }},
    }
