"""The example DAG's two deployment modes, run with ``airflow dags test`` per date.

``per_version``: one immutable stack per model version, each function serving its own
model key; retention keeps the newest ``keep_versions``. ``stable``: one stack updated
in place; a re-run of an older date restores that version's model without retraining.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from testkit.aws_state import live_stacks, model_keys_of_stacks
from testkit.example_dag import DAG_BUCKET, DAG_ID
from tests.conftest import AIRFLOW

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("dag_bucket")]


def _run(env: dict[str, str], date: str, **conf: Any) -> str:
    done = subprocess.run([AIRFLOW, "dags", "test", DAG_ID, date, "-c", json.dumps(conf)],
                          env=env, capture_output=True, text=True, timeout=600, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, "\n".join(output.splitlines()[-60:])
    assert "Dag run failed" not in output and "failed" not in output.splitlines()[-1], \
        "\n".join(output.splitlines()[-60:])
    return output


def _key(model: str, date: str) -> str:
    return f"models/{model}/{date.replace('-', '')}T000000/model.pkl"


def test_per_version_mode_one_stack_per_version_and_retention(
        airflow_env: dict[str, str], aws: Any, cfn: Any, boto_session: Any) -> None:
    dates = ["2025-03-01", "2025-03-02", "2025-03-03"]
    for date in dates:
        _run(airflow_env, date, stack_mode="per_version", model_name="pv", keep_versions=2)
    keys = model_keys_of_stacks(boto_session, aws.endpoint_url, cfn, "tdv-pv")
    assert keys == {f"tdv-pv-{d.replace('-', '')}T000000": _key("pv", d) for d in dates[1:]}
    tags = {t["Key"]: t["Value"] for t in cfn.describe_stacks(
        StackName="tdv-pv-20250303T000000")["Stacks"][0]["Tags"]}
    assert tags["tdv-airflow:deployment"] == "tdv-pv"


def test_stable_mode_updates_in_place_and_rerun_restores_a_version(
        airflow_env: dict[str, str], aws: Any, cfn: Any, boto_session: Any, s3: Any) -> None:
    _run(airflow_env, "2025-04-01", model_name="st")
    _run(airflow_env, "2025-04-02", model_name="st")
    assert live_stacks(cfn) == ["tdv-st"]
    assert model_keys_of_stacks(boto_session, aws.endpoint_url, cfn, "tdv-st") == {
        "tdv-st": _key("st", "2025-04-02")}
    old = s3.head_object(Bucket=DAG_BUCKET, Key=_key("st", "2025-04-01"))
    # re-running the older date redeploys exactly its model: not retrained
    output = _run(airflow_env, "2025-04-01", model_name="st")
    assert "version 20250401T000000 is not retrained" in output
    assert model_keys_of_stacks(boto_session, aws.endpoint_url, cfn, "tdv-st") == {
        "tdv-st": _key("st", "2025-04-01")}
    again = s3.head_object(Bucket=DAG_BUCKET, Key=_key("st", "2025-04-01"))
    assert again["ETag"] == old["ETag"] and again["LastModified"] == old["LastModified"]
    assert live_stacks(cfn) == ["tdv-st"]
