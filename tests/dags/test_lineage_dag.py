"""OpenLineage end to end: one run of the example DAG (``airflow dags test`` on the
emulator, API-key auth) with OpenLineage's file transport. Its events name the S3 model
and pickle (with their SHA-256) as inputs and the endpoint (stack, URL, version) as the
output, and hold no secret: not the API key's value, not the AWS secret key, not even the
word "secret"."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.lineage import ENDPOINT_FACET
from testkit.example_dag import DAG_ID, wait_settings
from tests.conftest import AIRFLOW, REGION


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _complete(events: list[dict[str, Any]], task_id: str) -> dict[str, Any]:
    """The COMPLETE event of ``task_id``'s job (``{dag_id}.{task_id}``)."""
    found = [e for e in events if e["eventType"] == "COMPLETE"
             and e["job"]["name"] == f"{DAG_ID}.{task_id}"]
    assert len(found) == 1, [(e["eventType"], e["job"]["name"]) for e in events]
    return found[0]


def _datasets(event: dict[str, Any], side: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["namespace"], d["name"]): d for d in event.get(side) or []}


@pytest.mark.e2e
def test_a_run_s_lineage_names_the_model_pickle_and_endpoint_and_no_secret(
        aws: Any, dag_bucket: str, boto_session: Any, airflow_env: dict[str, str],
        read_last_run: Any, tmp_path: Path) -> None:
    log = tmp_path / "openlineage.jsonl"
    env = {**airflow_env, **wait_settings("poke"),
           "AIRFLOW__OPENLINEAGE__DISABLED": "false",
           "AIRFLOW__OPENLINEAGE__NAMESPACE": "tdv-test",
           "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
               {"type": "file", "log_file_path": str(log), "append": True})}
    done = subprocess.run([AIRFLOW, "dags", "test", DAG_ID, "-c",
                           json.dumps({"endpoint_auth": "api_key"})],
                          env=env, capture_output=True, text=True, timeout=900, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    run = read_last_run(DAG_ID)
    assert run["state"] == "success", run["tis"]
    prepared = run["xcoms"]["prepare_deployment/return_value"]
    promoted = run["xcoms"]["promote/return_value"]
    endpoint_url = run["xcoms"]["wait_for_stack/return_value"]["api_endpoint"]
    events = _events(log)

    bucket = f"s3://{prepared['bucket']}"
    model = (bucket, prepared["model_s3_key"])
    pickle = (bucket, prepared["s3_prepro_fn_location"])
    digests = {model: prepared["sha256"]["model"], pickle: prepared["sha256"]["prepro_fn"]}

    prepare = _complete(events, "prepare_deployment")
    assert set(_datasets(prepare, "inputs")) == {model}
    assert pickle in _datasets(prepare, "outputs")
    for task_id in ("create_stack", "promote"):
        inputs = _datasets(_complete(events, task_id), "inputs")
        assert {k: inputs[k]["facets"]["version"]["datasetVersion"] for k in digests} == digests

    stack_name = promoted["stack_name"]
    for task_id in ("create_stack", "promote"):
        [output] = _complete(events, task_id)["outputs"]
        assert (output["namespace"], output["name"]) == (f"tdv-endpoint://{REGION}", stack_name)
    [live] = _complete(events, "promote")["outputs"]
    assert live["facets"]["version"]["datasetVersion"] == promoted["version"] == "1"
    facet = live["facets"][ENDPOINT_FACET]
    assert (facet["url"], facet["stackName"], facet["endpointAuth"]) == (
        endpoint_url, stack_name, "API_KEY")
    assert facet["serving"][0]["modelSha256"] == digests[model]
    assert any(i["type"] == "URL" and endpoint_url.startswith(i["namespace"] + i["name"])
               for i in live["facets"]["symlinks"]["identifiers"])

    text = log.read_text()
    keys = boto_session.client("apigateway", endpoint_url=aws.endpoint_url).get_api_keys(
        includeValues=True)["items"]
    values = [k["value"] for k in keys if k.get("value")]
    assert values, "the run made no API key: the scan below would prove nothing"
    leaked = [v for v in values if v in text]
    assert leaked == [], "an API key's value is in the OpenLineage events"
    assert env["AWS_SECRET_ACCESS_KEY"] not in text
    assert "secret" not in text.lower()
