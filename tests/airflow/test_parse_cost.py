"""What a DAG file pays for tdv-airflow's tasks: their import loads only what parsing
needs (timed against the Amazon provider's operator and sensor by bench/bench_parse.py)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("boto3", "botocore", "dill", "sklearn", "numpy", "moto", "aiobotocore")

_IMPORT = """
import json, sys
import airflow.sdk
before = set(sys.modules)
from tdv_airflow.operators import (CreateStackOperator, DeleteStackOperator,
    EndpointCheckOperator, PrepareDeploymentOperator, RetireVersionsOperator)
from tdv_airflow.sensors import StackStatusSensor
import tdv_airflow.hooks, tdv_airflow.links
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_importing_the_tasks_loads_no_boto3_no_core_and_no_trigger() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORT], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    assert heavy == [], heavy
    ours = sorted(m for m in loaded if m.startswith("tdv_airflow"))
    assert ours == ["tdv_airflow.assets",
                    "tdv_airflow.hooks", "tdv_airflow.hooks.connection", "tdv_airflow.lineage",
                    "tdv_airflow.links",
                    "tdv_airflow.operators", "tdv_airflow.operators.base",
                    "tdv_airflow.operators.config", "tdv_airflow.operators.deployment",
                    "tdv_airflow.operators.endpoint", "tdv_airflow.operators.promote",
                    "tdv_airflow.operators.rollout", "tdv_airflow.operators.teardown",
                    "tdv_airflow.sensors", "tdv_airflow.sensors.deployment"], ours
    assert not [m for m in loaded if m.startswith("airflow.triggers")], \
        "the triggers load only when a task defers"
