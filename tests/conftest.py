"""Fixtures shared by every test: one real moto server per session (reset between
tests), clients on it, and a migrated Airflow home for ``airflow`` commands.

Nothing here imports Airflow at collection time; the fixtures that need it import it
when first used.
"""

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

from tdv_airflow.local.aws import LocalAws

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
TEST_BUCKET = "tdv-test-bucket"
REGION = "us-east-1"

# Airflow reads its configuration when first imported: keep it out of ~/airflow.
if "airflow" not in sys.modules:
    os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="tdv-airflow-home-")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    """The session's moto server; its endpoint is exported to boto3 and Airflow."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with LocalAws(log_path=log) as aws, pytest.MonkeyPatch.context() as mp:
        for name, value in aws.environ().items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        yield aws


@pytest.fixture
def aws(local_aws: LocalAws) -> LocalAws:
    """The moto server, emptied before the test."""
    local_aws.reset()
    return local_aws


@pytest.fixture
def boto_session(aws: LocalAws) -> Any:
    """A boto3 Session with the emulator's fake credentials."""
    import boto3

    return boto3.Session(
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )


@pytest.fixture
def s3(boto_session: Any, aws: LocalAws) -> Any:
    """An S3 client on the emulator."""
    return boto_session.client("s3", endpoint_url=aws.endpoint_url)


@pytest.fixture
def cfn(boto_session: Any, aws: LocalAws) -> Any:
    """A CloudFormation client on the emulator."""
    return boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)


@pytest.fixture
def bucket(s3: Any) -> str:
    """An empty bucket on the emulator."""
    s3.create_bucket(Bucket=TEST_BUCKET)
    return TEST_BUCKET


@pytest.fixture
def model_in_s3(s3: Any, bucket: str) -> Iterator[str]:
    """A small pickled model in the test bucket; yields its key."""
    import pickle

    key = "models/test/model.pkl"
    s3.put_object(Bucket=bucket, Key=key, Body=pickle.dumps({"weights": [1, 2, 3]}))
    yield key


@pytest.fixture(scope="session")
def airflow_env(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory
                ) -> dict[str, str]:
    """Environment of ``airflow`` commands: a migrated SQLite DB, the repo's dags/,
    the emulator as ``aws_default``, one-second stack polls."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        **local_aws.environ(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__TDV_AIRFLOW__POLL_INTERVAL": "1",
        # no lineage from a shell's OPENLINEAGE_URL (tests/dags/test_lineage_dag.py opts in)
        "AIRFLOW__OPENLINEAGE__DISABLED": "true",
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


#: Test files (or a package, for the fault suite's one topology) that take minutes: handed
#: out first when the suite runs in parallel (``-n``), so no worker starts one last.
LONGEST_FIRST = ("tests/faults/", "tests/dags/test_backfill.py",
                 "tests/dags/test_rollout_gate.py", "tests/ui/", "tests/local/")


def _unit(nodeid: str) -> str:
    """The unit of work of a test under pytest-xdist: its file, or the fault suite."""
    path = nodeid.split("::")[0]
    return "tests/faults/" if path.startswith("tests/faults/") else path


def _rank(item: pytest.Item) -> int:
    unit = _unit(item.nodeid)
    return next((i for i, p in enumerate(LONGEST_FIRST) if unit.startswith(p)),
                len(LONGEST_FIRST))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest files first (a stable sort keeps the order within a file).

    :param config: pytest's configuration.
    :param items: the collected tests, reordered in place.
    """
    items.sort(key=_rank)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist's scheduler: each test file whole in one worker, and the whole fault
    suite in one, so module- and package-scoped fixtures (a topology) start once; units
    handed out in the collection order above. (``--dist loadgroup`` would do it with
    markers, but pytest-xdist 3.8 renames node ids in a way pytest 9.2 ignores.)

    :param config: pytest's configuration.
    :param log: pytest-xdist's logger.
    """
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit(nodeid)

    return ByFile(config, log)
