"""The asset pair of example DAGs parses cleanly and cheaply and is wired by the asset
alone: the training task publishes it, the deploy DAG is scheduled on it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tdv_airflow.assets import ENDPOINT_ALIAS
from tests.conftest import DAGS
from tests.dags.test_example_dag import _IMPORT_IN_FRESH_INTERPRETER, HEAVY

PAIR = ("train_model_asset", "deploy_on_new_model")
MODEL_URI = "s3://tdv-airflow-models/models/iris-asset"


def test_the_pair_is_joined_by_the_model_asset_only() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk import Asset, AssetAlias

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {} and bag.captured_warnings == {}
    train, deploy = (bag.dags[dag_id] for dag_id in PAIR)
    assert train.schedule is None
    assert train.get_task("train").outlets == [Asset(uri=MODEL_URI)]
    assert [a.uri for a in deploy.timetable.asset_condition.objects] == [MODEL_URI]
    assert set(deploy.task_ids) == {"model_of_event", "prepare_deployment", "create_stack",
                                    "wait_for_stack", "validate_candidate", "promote"}
    assert deploy.get_task("promote").outlets == [AssetAlias(ENDPOINT_ALIAS)]
    assert deploy.get_task("prepare_deployment").upstream_task_ids == {"model_of_event"}
    for dag in (train, deploy):
        source = (DAGS / f"{dag.dag_id}.py").read_text()
        assert "os.environ" not in source and "getenv" not in source
        assert len(source.splitlines()) <= 90, f"{dag.dag_id} is no longer short"


#: What ``Asset(uri="s3://...")`` alone loads in a fresh interpreter: Airflow normalises an
#: s3 URI with the Amazon provider's handler, whose module imports its S3Hook (boto3).
_S3_ASSET_ONLY = """
import json, sys
from airflow.sdk import Asset
Asset(uri="s3://any-bucket/any/key")
print(json.dumps({"heavy": sorted(m for m in sys.argv[2].split(",") if m in sys.modules),
                  "tasks": ["-"]}))
"""


def _heavy(snippet: str, path: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", snippet, path, ",".join(HEAVY)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tasks"], "the DAG file defined no tasks"
    return list(result["heavy"])


@pytest.mark.parametrize("dag_id", PAIR)
def test_parsing_imports_nothing_heavy_beyond_airflows_s3_asset(dag_id: str) -> None:
    by_airflow = _heavy(_S3_ASSET_ONLY, "-")
    assert set(by_airflow) <= {"boto3", "botocore"}, by_airflow
    assert _heavy(_IMPORT_IN_FRESH_INTERPRETER, str(DAGS / f"{dag_id}.py")) == by_airflow
