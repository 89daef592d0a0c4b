"""The asset pair on a real scheduler and dag-processor: a training run publishes the
model asset, ``deploy_on_new_model`` runs by itself and serves the model that event
names; a second training run deploys the second model with no trigger in between.

The topology is :class:`testkit.local_topology.LocalExecutorTopology` without its
triggerer: PostgreSQL, the local AWS, api-server (the tasks' Execution API), scheduler
(its LocalExecutor runs the tasks) and dag-processor. The asset-triggered run is the
scheduler's and dag-processor's work, not the executor's, so Celery (a broker and a
worker) would add two processes and nothing under test; the tasks poke (the emulator
completes a stack at once), so no task defers and no triggerer is needed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.airflow_api import FINISHED_RUN, AirflowApi
from testkit.example_dag import wait_settings
from testkit.local_topology import LocalExecutorTopology, running

pytestmark = pytest.mark.e2e

TRAIN, DEPLOY = "train_model_asset", "deploy_on_new_model"
MODEL_URI = "s3://tdv-airflow-models/models/iris-asset"
STACK = "tdv-iris-asset"
ENDPOINT_URI = f"tdv-endpoint://us-east-1/{STACK}"
#: Seconds a training run, then the deploy run it triggers, may take.
TRAIN_DEADLINE, DEPLOY_DEADLINE = 120.0, 300.0


class _Topology(LocalExecutorTopology):
    """No triggerer: nothing defers here."""

    AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor")


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Topology]:
    with running(_Topology(tmp_path_factory.mktemp("assets"), parallelism=2,
                           extra_env=wait_settings("poke", poll_interval=2))) as topo:
        yield topo


def _wait_run(api: AirflowApi, topology: _Topology, dag_id: str, deadline: float,
              after: set[str]) -> dict[str, Any]:
    """The first run of ``dag_id`` not in ``after``, once finished."""
    while True:
        topology.check_alive()
        runs = [r for r in api.dag_runs(dag_id) if r["dag_run_id"] not in after]
        if runs and runs[0]["state"] in FINISHED_RUN:
            return runs[0]
        if time.monotonic() > deadline:
            states = [(t["task_id"], t["state"]) for r in runs
                      for t in api.task_instances(dag_id, run_id=r["dag_run_id"])]
            raise AssertionError(f"no finished run of {dag_id} in time: {runs} {states}\n"
                                 f"{topology.diagnostics()}")
        time.sleep(1.0)


def _asset_events(api: AirflowApi, uri: str, source_dag_id: str) -> list[dict[str, Any]]:
    """Every event of the asset ``uri`` that ``source_dag_id`` produced, oldest first (by
    producer: an asset created at run time through an alias is not listed as active)."""
    events = api.call("GET", "/assets/events", params={
        "source_dag_id": source_dag_id, "order_by": "timestamp", "limit": 100})["asset_events"]
    return [e for e in events if e["uri"] == uri]


def _train_then_deploy(api: AirflowApi, topology: _Topology, seen: set[str]) -> dict[str, Any]:
    """One training run, and the deploy run its asset event triggers; checks that the
    deploy served exactly that event's model. Returns the model event's extra."""
    started = time.monotonic()
    deploy_runs = {r["dag_run_id"] for r in api.dag_runs(DEPLOY)}  # before the event
    train = api.trigger(TRAIN, {})
    done = _wait_run(api, topology, TRAIN, started + TRAIN_DEADLINE, set(seen))
    assert done["dag_run_id"] == train["dag_run_id"] and done["state"] == "success", done
    event = _asset_events(api, MODEL_URI, TRAIN)[-1]
    extra = event["extra"]
    assert (event["source_dag_id"], event["source_run_id"]) == (TRAIN, train["dag_run_id"])
    assert extra == api.xcom(TRAIN, train["dag_run_id"], "train")
    assert extra["model_s3_key"].startswith("models/iris-asset/"), extra

    run = _wait_run(api, topology, DEPLOY, time.monotonic() + DEPLOY_DEADLINE, deploy_runs)
    states = {t["task_id"]: t["state"]
              for t in api.task_instances(DEPLOY, run_id=run["dag_run_id"])}
    assert run["state"] == "success", (run, states, topology.diagnostics())
    assert run["run_type"] == "asset_triggered", run
    upstream = api.call("GET", f"/dags/{DEPLOY}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents")
    assert [e["id"] for e in upstream["asset_events"]] == [event["id"]], upstream
    print(f"\ntraining + deploy of {extra['model_s3_key']}: {time.monotonic() - started:.0f} s")

    # The endpoint serves that model: the live version's key and digest are the event's.
    promoted = api.xcom(DEPLOY, run["dag_run_id"], "promote")
    [serving] = promoted["live"]["serving"]
    assert (serving["model_s3_key"], serving["model_sha256"]) == (
        extra["model_s3_key"], extra["model_sha256"]), (promoted, extra)
    lam = topology.boto3_client("lambda")
    alias = lam.get_alias(FunctionName=STACK, Name="live")
    config = lam.get_function_configuration(FunctionName=STACK,
                                            Qualifier=alias["FunctionVersion"])
    variables = config["Environment"]["Variables"]
    assert (variables["TDV_MODEL_KEY"], variables["TDV_MODEL_SHA256"]) == (
        extra["model_s3_key"], extra["model_sha256"]), variables
    assert alias["FunctionVersion"] == promoted["version"]

    # ... and promote announced the endpoint, naming that version and model.
    endpoint = _asset_events(api, ENDPOINT_URI, DEPLOY)[-1]
    assert (endpoint["source_dag_id"], endpoint["source_run_id"]) == (DEPLOY, run["dag_run_id"])
    assert {k: endpoint["extra"][k] for k in ("stack", "version", "model_s3_key",
                                              "model_sha256")} == {
        "stack": STACK, "version": promoted["version"], "model_s3_key": extra["model_s3_key"],
        "model_sha256": extra["model_sha256"]}, endpoint
    assert endpoint["extra"]["endpoint_url"].startswith("https://"), endpoint
    seen.add(train["dag_run_id"])
    return dict(extra)


def test_each_published_model_is_deployed_by_itself(topology: _Topology,
                                                    tmp_path: Path) -> None:
    api = topology.api()
    for dag_id in (TRAIN, DEPLOY):
        api.wait_for_dag(dag_id)
        assert api.set_paused(dag_id, False)["is_paused"] is False
    seen: set[str] = set()
    first = _train_then_deploy(api, topology, seen)
    second = _train_then_deploy(api, topology, seen)
    assert first["model_s3_key"] != second["model_s3_key"]
    runs = api.dag_runs(DEPLOY)
    assert [r["run_type"] for r in runs] == ["asset_triggered"] * 2, runs
    versions = [api.xcom(DEPLOY, r["dag_run_id"], "promote")["version"] for r in runs]
    assert sorted(versions) == ["1", "2"], versions
