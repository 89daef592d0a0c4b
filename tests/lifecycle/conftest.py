"""Fixtures of the lifecycle tests: task contexts, direct ``execute``, emulator clients."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.task_context import FakeTaskInstance

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")

# Airflow reads its configuration when first imported: keep it out of ~/airflow.
if "airflow" not in sys.modules:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="tdv-airflow-home-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


@pytest.fixture
def task_context() -> Callable[..., dict[str, Any]]:
    """Build a minimal task context for unit-level ``execute`` calls."""

    def make(**extra: Any) -> dict[str, Any]:
        ti = FakeTaskInstance(dag_id="tdv_lifecycle_dag")
        return {"ti": ti, "run_id": ti.run_id, "dag_id": ti.dag_id, "params": {},
                "task_reschedule_count": 0, **extra}

    return make


@pytest.fixture(autouse=True)
def _allow_direct_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let tests call ``execute`` outside the task runner (Airflow's unit-test mode)."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)


@pytest.fixture
def cfn(boto_session: Any, aws: Any) -> Any:
    """A CloudFormation client on the emulator."""
    return boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)


def live_stacks(cfn: Any) -> list[str]:
    """Names of the emulator's stacks that are not deleted."""
    return sorted(s["StackName"] for s in cfn.describe_stacks()["Stacks"]
                  if s["StackStatus"] != "DELETE_COMPLETE")


def all_objects(s3: Any) -> set[str]:
    """``bucket/key`` of every object on the emulator."""
    found = set()
    for b in s3.list_buckets().get("Buckets", []):
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=b["Name"]):
            found |= {f"{b['Name']}/{o['Key']}" for o in page.get("Contents", [])}
    return found


@pytest.fixture(scope="session")
def airflow_env(local_aws: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of ``airflow`` commands: a migrated SQLite DB, the repo's dags/,
    the emulator as ``aws_default``, one-second sensor polls."""
    import subprocess

    home = tmp_path_factory.mktemp("airflow-home-lifecycle")
    env = {
        **os.environ,
        **local_aws.environ(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "TDV_POKE_INTERVAL": "1",
        "TDV_SENSOR_MODE": "poke",
    }
    env.pop("AWS_PROFILE", None)
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return env


def model_keys_of_stacks(boto_session: Any, endpoint_url: str, cfn: Any,
                         prefix: str) -> dict[str, str]:
    """``TDV_MODEL_KEY`` of the function of every live stack whose name starts with
    ``prefix``, by stack name."""
    lam = boto_session.client("lambda", endpoint_url=endpoint_url)
    found = {}
    for stack in cfn.describe_stacks()["Stacks"]:
        if stack["StackStatus"] == "DELETE_COMPLETE" or not stack["StackName"].startswith(
                prefix):
            continue
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        config = lam.get_function_configuration(FunctionName=outputs["FunctionName"])
        found[stack["StackName"]] = config["Environment"]["Variables"]["TDV_MODEL_KEY"]
    return found
