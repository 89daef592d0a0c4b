"""Fixtures of the Airflow-layer tests: a private AIRFLOW_HOME, task contexts, clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from task_context import FakeTaskInstance

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
REGION = "us-east-1"

# Airflow reads its configuration when first imported: keep it out of ~/airflow.
if "airflow" not in sys.modules:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="tdv-airflow-home-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


@pytest.fixture
def task_context() -> Callable[..., dict[str, Any]]:
    """Build a minimal task context for unit-level ``execute`` calls."""

    def make(ti: FakeTaskInstance | None = None, **extra: Any) -> dict[str, Any]:
        ti = ti or FakeTaskInstance()
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


@pytest.fixture(scope="session")
def airflow_env(local_aws: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of ``airflow`` commands: a migrated SQLite DB, the repo's dags/,
    the emulator as ``aws_default``."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        **local_aws.environ(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "TDV_POKE_INTERVAL": "1",
    }
    env.pop("AWS_PROFILE", None)
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return env


_READ_RUN = """
import json, sys
from sqlalchemy import select
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.taskreschedule import TaskReschedule
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session

dag_id = sys.argv[1]
with create_session() as s:
    run = s.scalars(select(DagRun).where(DagRun.dag_id == dag_id)
                    .order_by(DagRun.id.desc()).limit(1)).one()
    xcoms = {f"{x.task_id}/{x.key}": x.value for x in s.scalars(
        select(XComModel).where(XComModel.dag_id == dag_id, XComModel.run_id == run.run_id))}
    tis = {ti.task_id: {"state": str(ti.state), "try_number": ti.try_number,
                        "reschedules": len(s.scalars(select(TaskReschedule)
                                           .where(TaskReschedule.ti_id == ti.id)).all())}
           for ti in s.scalars(select(TaskInstance).where(
               TaskInstance.dag_id == dag_id, TaskInstance.run_id == run.run_id))}
    print(json.dumps({"run_id": run.run_id, "state": str(run.state), "xcoms": xcoms,
                      "tis": tis}, default=str))
"""


@pytest.fixture(scope="session")
def read_last_run(airflow_env: dict[str, str]) -> Callable[[str], dict[str, Any]]:
    """Read the latest run of a DAG back from the metadata DB: state, XComs, TIs."""

    def read(dag_id: str) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-c", _READ_RUN, dag_id], env=airflow_env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))

    return read


@pytest.fixture
def model_in_s3(s3: Any, bucket: str) -> Iterator[str]:
    """A small pickled model in the test bucket; yields its key."""
    import pickle

    key = "models/test/model.pkl"
    s3.put_object(Bucket=bucket, Key=key, Body=pickle.dumps({"weights": [1, 2, 3]}))
    yield key
