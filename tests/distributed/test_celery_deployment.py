"""The example DAG on the Compose topology, run natively, driven as a user drives the UI.

Through the REST API v2 (JWT from ``POST /auth/token``), the test unpauses
``retrain_and_deploy``, triggers one manual run without a logical date, and creates a
backfill of five dates that may all run at once, every run in the DAG's per-version mode
(one stack per model version). Tasks run on the Celery worker, sensors wait on the
triggerer.

Every stack the test's runs create is held in CREATE_IN_PROGRESS by a custom resource
(the emulator completes stacks at once otherwise) and is only released once the run's
``wait_for_stack`` task instance has been seen DEFERRED with its StackStatusTrigger
picked up by the triggerer; the backfill's five stacks are released only when all five
sensors are deferred at the same time, which the worker's four slots could not hold if
the sensors kept them. A sensor that did not defer would never be released, and the
run would fail by the deadline.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core.naming import model_version
from testkit.airflow_api import FINISHED_RUN, AirflowApi
from testkit.example_dag import DAG_ID, check_per_version_mode, per_version_conf
from testkit.held_stack import deployment_template_with_hold
from testkit.topology import Topology
from tests.distributed.conftest import WORKER_CONCURRENCY

TRIGGER_CLASSPATH = "tdv_airflow.triggers.deployment.StackStatusTrigger"
#: The backfill: five nightly runs (the schedule is 02:00 UTC) from the DAG's start date.
BACKFILL_FROM = datetime(2025, 1, 1, tzinfo=UTC)
BACKFILL_TO = datetime(2025, 1, 5, 23, 0, tzinfo=UTC)
BACKFILL_RUNS = 5
#: Seconds every run gets to finish, from the backfill's creation.
RUNS_DEADLINE = 540.0
#: A Celery task (one Airflow workload) finished by the worker.
CELERY_DONE = re.compile(r"Task execute_workload\[[0-9a-f-]+\] succeeded")
#: The predictions of the DAG's default smoke payload.
EXPECTED_PREDICTIONS = [0, 2]


@dataclass
class Observed:
    """What the test saw of the runs while they ran.

    :param deferred: run id -> the sensor's deferred task instance, as first seen with
        its trigger assigned to a triggerer.
    :param released: run id -> stack name released.
    :param most_backfill_deferred: the most backfill sensors seen deferred at once.
    """

    deferred: dict[str, dict[str, Any]] = field(default_factory=dict)
    released: dict[str, str] = field(default_factory=dict)
    most_backfill_deferred: int = 0


def _expected_version(run: dict[str, Any]) -> str:
    """The model version the DAG names for a run (its logical date, or its run id)."""
    logical = run.get("logical_date")
    return model_version(datetime.fromisoformat(logical) if logical else None, run["dag_run_id"])


def _celery_tasks_done(topology: Topology, expected: int, timeout: float = 60.0) -> int:
    """The Celery tasks the worker logged as finished, once ``expected`` are (or time is up).

    A task instance is marked successful before its Celery task returns, so the last
    ones may still be finishing when the runs are.
    """
    deadline = time.monotonic() + timeout
    while True:
        done = len(CELERY_DONE.findall(topology.services["worker"].log_path.read_text()))
        if done >= expected or time.monotonic() > deadline:
            return done
        time.sleep(1.0)


def _trigger_log(topology: Topology, run_id: str) -> str:
    """What the triggerer logged for a run's sensor (Airflow's per-task trigger log)."""
    folder = (topology.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
              / "task_id=wait_for_stack")
    return "".join(path.read_text() for path in sorted(folder.glob("attempt=*.log.trigger.*")))


def _drive(api: AirflowApi, topology: Topology, ours: set[str], backfill_ids: set[str],
           deadline: float) -> tuple[list[dict[str, Any]], Observed]:
    """Watch the runs until all are finished, releasing stacks as described above."""
    observed = Observed()
    while True:
        topology.check_alive()
        runs = api.dag_runs(DAG_ID)
        sensors = {ti["dag_run_id"]: ti for ti in api.task_instances(DAG_ID, "wait_for_stack")}
        deferred_now = {run_id for run_id, ti in sensors.items()
                        if run_id in ours and ti["state"] == "deferred"
                        and ti.get("trigger") and ti.get("triggerer_job")}
        for run_id in deferred_now:
            observed.deferred.setdefault(run_id, sensors[run_id])
        observed.most_backfill_deferred = max(observed.most_backfill_deferred,
                                              len(deferred_now & backfill_ids))
        to_release = {r for r in deferred_now - backfill_ids if r not in observed.released}
        if backfill_ids <= deferred_now:
            to_release |= {r for r in backfill_ids if r not in observed.released}
        for run_id in sorted(to_release):
            stack_name = sensors[run_id]["rendered_fields"]["stack_name"]
            topology.release_held_stack(stack_name)
            observed.released[run_id] = stack_name
        if any(r["state"] == "failed" for r in runs) or (
                ours <= {r["dag_run_id"] for r in runs}
                and all(r["state"] in FINISHED_RUN for r in runs)):
            return runs, observed
        if time.monotonic() > deadline:
            return runs, observed
        time.sleep(1.0)


@pytest.mark.distributed
def test_backfill_deploys_one_stack_per_version_on_celery_and_the_triggerer(
        topology: Topology, tmp_path: Path) -> None:
    api = topology.api()
    dag = api.wait_for_dag(DAG_ID)
    assert dag["timetable_summary"] == "0 2 * * *", dag["timetable_summary"]
    check_per_version_mode(dag)
    template = deployment_template_with_hold(tmp_path / "held_template.json")
    conf = per_version_conf(template, keep_versions=BACKFILL_RUNS + 1)

    started = time.monotonic()
    assert api.set_paused(DAG_ID, False)["is_paused"] is False
    manual = api.trigger(DAG_ID, conf)
    assert manual["logical_date"] is None and manual["conf"] == conf
    backfill = api.create_backfill(DAG_ID, BACKFILL_FROM, BACKFILL_TO,
                                   max_active_runs=BACKFILL_RUNS, conf=conf)
    runs_of_backfill = [r for r in api.dag_runs(DAG_ID) if r["run_type"] == "backfill"]
    assert sorted(r["logical_date"][:10] for r in runs_of_backfill) == [
        f"2025-01-0{day}" for day in range(1, BACKFILL_RUNS + 1)], runs_of_backfill
    backfill_ids = {r["dag_run_id"] for r in runs_of_backfill}
    ours = backfill_ids | {manual["dag_run_id"]}

    runs, observed = _drive(api, topology, ours, backfill_ids, started + RUNS_DEADLINE)
    elapsed = time.monotonic() - started
    states = {r["dag_run_id"]: r["state"] for r in runs}
    failed_tis = [(t["dag_run_id"], t["task_id"], t["state"], t["try_number"])
                  for t in api.task_instances(DAG_ID) if t["state"] != "success"]
    context = (f"after {elapsed:.0f} s: runs {states}; unfinished or failed task instances "
               f"{failed_tis}; deferred seen {sorted(observed.deferred)}; released "
               f"{observed.released}\n{topology.diagnostics()}")
    assert all(state == "success" for state in states.values()) and ours <= set(states), context
    print(f"\n{len(runs)} runs ({len(ours)} with held stacks) finished in {elapsed:.0f} s")

    # Every sensor of our runs deferred to the triggerer; the backfill's five at once.
    assert set(observed.deferred) == ours, context
    for ti in observed.deferred.values():
        assert ti["trigger"]["classpath"] == TRIGGER_CLASSPATH, ti["trigger"]
        assert ti["triggerer_job"]["job_type"] == "TriggererJob", ti["triggerer_job"]
    assert observed.most_backfill_deferred == BACKFILL_RUNS > WORKER_CONCURRENCY
    # the scheduler marks the backfill complete on a later loop than its last run's end
    deadline = time.monotonic() + 120
    while api.backfill(backfill["id"])["completed_at"] is None and time.monotonic() < deadline:
        time.sleep(2)
    assert api.backfill(backfill["id"])["completed_at"] is not None, "backfill never completed"

    # Every task instance ran once, on the Celery worker; each deferred sensor resumed
    # there once more after its trigger fired.
    tis = api.task_instances(DAG_ID)
    retried = [(t["dag_run_id"], t["task_id"]) for t in tis if t["try_number"] != 1]
    assert retried == [], f"tasks needed a retry: {retried}\n{topology.diagnostics()}"
    assert _celery_tasks_done(topology, len(tis) + len(ours)) == len(tis) + len(ours), (
        topology.services["worker"].tail())

    # One stack per version, each serving its own run's model.
    lam = topology.boto3_client("lambda")
    by_run = {r["dag_run_id"]: r for r in runs}
    deployed: dict[str, str] = {}
    for run_id in sorted(ours):
        version = _expected_version(by_run[run_id])
        key = api.xcom(DAG_ID, run_id, "train_model", "model_s3_key")
        assert key == f"models/iris/{version}/model.pkl", (run_id, key)
        created = api.xcom(DAG_ID, run_id, "create_stack")
        endpoint = api.xcom(DAG_ID, run_id, "wait_for_stack")
        assert endpoint["stack_name"] == created["stack_name"] == observed.released[run_id]
        assert version in endpoint["stack_name"], endpoint
        assert endpoint["stack_status"] == "CREATE_COMPLETE", endpoint
        assert endpoint["api_endpoint"].startswith("https://"), endpoint
        assert endpoint["api_endpoint"].endswith("/prod/predict"), endpoint
        function = endpoint["outputs"]["FunctionName"]
        variables = lam.get_function_configuration(FunctionName=function)["Environment"]
        assert variables["Variables"]["TDV_MODEL_KEY"] == key, (function, variables)
        validated = api.xcom(DAG_ID, run_id, "validate_candidate")
        assert validated["answers"][0]["predictions"] == EXPECTED_PREDICTIONS
        promoted = api.xcom(DAG_ID, run_id, "promote")
        assert promoted["version"] == validated["version"] == "1", (promoted, validated)
        assert api.xcom(DAG_ID, run_id, "retire_old_versions") == []
        deployed[endpoint["stack_name"]] = key
        trigger_log = _trigger_log(topology, run_id)
        assert "Trigger fired event" in trigger_log and endpoint["stack_name"] in trigger_log, (
            f"the triggerer's log of {run_id} shows no event for {endpoint['stack_name']}")
    assert len(deployed) == len(ours) and len(set(deployed.values())) == len(ours), deployed
