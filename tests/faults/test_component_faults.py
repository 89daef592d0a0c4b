"""Airflow's own components die under running deployments: the triggerer with five
deferred sensors, the scheduler in the middle of a five-date backfill, and PostgreSQL
with runs in flight. Each is SIGKILLed (PostgreSQL: fast shutdown, every connection cut)
and started again as Compose's ``restart: always`` would; the runs must complete with
nothing lost and nothing done twice.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core.naming import model_version
from testkit.example_dag import DAG_ID, per_version_conf
from testkit.fault_runs import (
    STABLE_STACK,
    Row,
    check_recovered,
    model_key,
    proxy_of,
    report,
    tries,
    trigger,
    wait_finished,
    wait_for_task_state,
)
from testkit.fault_topology import FaultTopology
from testkit.held_stack import deployment_template_with_hold
from tests.faults.conftest import WORKER_CONCURRENCY

#: The runs each backfill creates (one per nightly date).
BACKFILL_RUNS = 5
#: The trigger the stack sensor defers to.
TRIGGER_CLASSPATH = "tdv_airflow.triggers.deployment.StackStatusTrigger"


def _backfill(topology: FaultTopology, first_day: datetime, conf: dict[str, Any],
              max_active_runs: int) -> list[dict[str, Any]]:
    """Create a backfill of :data:`BACKFILL_RUNS` nightly dates; its runs by date.

    Airflow allows one running backfill per DAG, and marks one complete a scheduler loop
    after its last run: an earlier row's backfill may still be running for a few seconds.
    """
    from testkit.airflow_api import ApiError

    api = topology.api()
    last = first_day.replace(day=first_day.day + BACKFILL_RUNS - 1, hour=23)
    deadline = time.monotonic() + 180
    while True:
        try:
            api.create_backfill(DAG_ID, first_day, last, max_active_runs=max_active_runs,
                                conf=conf)
            break
        except ApiError as exc:
            if "409" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)
    runs = sorted((r for r in api.dag_runs(DAG_ID) if r["run_type"] == "backfill"
                   and first_day.isoformat()[:10] <= r["logical_date"][:10]
                   <= last.isoformat()[:10]), key=lambda r: r["logical_date"])
    assert len(runs) == BACKFILL_RUNS, runs
    return runs


def _wait_backfill_complete(topology: FaultTopology, timeout: float = 180.0) -> None:
    """Wait until the scheduler has marked every backfill of the DAG complete."""
    api = topology.api()
    deadline = time.monotonic() + timeout
    while any(b["completed_at"] is None for b in api.call(
            "GET", "/backfills", params={"dag_id": DAG_ID})["backfills"]):
        assert time.monotonic() < deadline, "a backfill was never marked complete"
        time.sleep(2)


def _trigger_events(topology: FaultTopology, run_id: str) -> int:
    """How many events the sensor's triggers fired for a run (every triggerer's log)."""
    folder = (topology.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
              / "task_id=wait_for_stack")
    return sum(path.read_text().count("Trigger fired event")
               for path in folder.glob("attempt=*.log.trigger.*"))


@pytest.mark.faults
@pytest.mark.slow
def test_triggerer_killed_with_five_deferred_sensors_resumes_every_trigger_once(
        clean_faults: FaultTopology, tmp_path: Path) -> None:
    topology = clean_faults
    proxy = proxy_of(topology)
    api = topology.api()
    template = deployment_template_with_hold(tmp_path / "held_template.json")
    row = Row("triggerer SIGKILL with five deferred sensors", calls_from=len(proxy.calls))
    runs = _backfill(topology, datetime(2025, 1, 1, 2, tzinfo=UTC),
                     per_version_conf(template, keep_versions=BACKFILL_RUNS + 1),
                     max_active_runs=BACKFILL_RUNS)
    ids = {r["dag_run_id"] for r in runs}
    # every stack is held in CREATE_IN_PROGRESS: all five sensors defer, more than the
    # worker's slots could hold if they waited there
    deadline = time.monotonic() + 420
    while True:
        topology.check_alive()
        sensors = {t["dag_run_id"]: t for t in api.task_instances(DAG_ID, "wait_for_stack")
                   if t["dag_run_id"] in ids}
        deferred = {r for r, t in sensors.items() if t["state"] == "deferred"
                    and t.get("trigger") and t.get("triggerer_job")}
        if deferred == ids:
            break
        assert time.monotonic() < deadline, (sensors, topology.diagnostics())
        time.sleep(1)
    assert BACKFILL_RUNS > WORKER_CONCURRENCY
    for sensor in sensors.values():
        assert sensor["trigger"]["classpath"] == TRIGGER_CLASSPATH, sensor["trigger"]
        assert sensor["triggerer_job"]["job_type"] == "TriggererJob", sensor["triggerer_job"]
    old_job = {t["triggerer_job"]["id"] for t in sensors.values()}
    row.injected_at = time.monotonic()
    topology.kill("triggerer")
    topology.restart("triggerer")
    for run_id in sorted(ids):  # the stacks complete while their triggers are orphaned
        topology.release_held_stack(sensors[run_id]["rendered_fields"]["stack_name"])
    states = wait_finished(topology, ids)
    finished = time.monotonic()
    assert set(states.values()) == {"success"}, states
    _wait_backfill_complete(topology)

    for run_id in sorted(ids):
        # one try each: the sensor was never failed nor retried; its trigger, taken over
        # by the new triggerer from its serialized state, fired exactly once
        assert tries(topology, run_id)["wait_for_stack"] == 1, tries(topology, run_id)
        assert _trigger_events(topology, run_id) == 1, run_id
        history = api.tries(DAG_ID, run_id, "wait_for_stack")
        assert len(history) == 1, history
    new_jobs = {t["triggerer_job"]["id"] for t in api.task_instances(DAG_ID, "wait_for_stack")
                if t["dag_run_id"] in ids and t.get("triggerer_job")}
    row.notes.update(runs=BACKFILL_RUNS, old_triggerer_jobs=sorted(old_job),
                     triggerer_jobs_after=sorted(new_jobs))
    report(row, topology, finished)
    version_stacks = {api.xcom(DAG_ID, r, "wait_for_stack")["stack_name"]: api.xcom(
        DAG_ID, r, "train_model", "model_s3_key") for r in ids}
    assert len(version_stacks) == BACKFILL_RUNS and STABLE_STACK not in version_stacks
    check_recovered(topology, ids, {**topology.live, **version_stacks}, tmp_path)
    topology.delete_stacks(sorted(version_stacks))


@pytest.mark.faults
@pytest.mark.slow
def test_scheduler_killed_mid_backfill_deploys_every_date_once_in_order(
        clean_faults: FaultTopology, tmp_path: Path) -> None:
    topology = clean_faults
    proxy = proxy_of(topology)
    row = Row("scheduler SIGKILL mid five-date backfill", calls_from=len(proxy.calls))
    runs = _backfill(topology, datetime(2025, 2, 1, 2, tzinfo=UTC), {}, max_active_runs=1)
    ids = [r["dag_run_id"] for r in runs]
    # the second date is being deployed: kill the scheduler, start it again
    wait_for_task_state(topology, ids[1], "prepare_deployment", {"running"})
    row.injected_at = time.monotonic()
    topology.kill("scheduler")
    topology.restart("scheduler")
    states = wait_finished(topology, set(ids), timeout=600)
    finished = time.monotonic()
    assert set(states.values()) == {"success"}, states
    api = topology.api()
    keys = [api.xcom(DAG_ID, r, "train_model", "model_s3_key") for r in ids]
    topology.live[STABLE_STACK] = keys[-1]
    _wait_backfill_complete(topology)

    versions = [model_version(datetime.fromisoformat(r["logical_date"]), r["dag_run_id"])
                for r in runs]
    assert [v in k for v, k in zip(versions, keys, strict=True)] == [True] * BACKFILL_RUNS
    # exactly one update of the stack per date, in the dates' order
    calls = proxy.since(row.calls_from)
    updated = [_parameter(c.params, "ModelKey") for c in calls
               if c.action == "UpdateStack" and c.status == 200]
    assert updated == keys, updated
    promoted = [int(api.xcom(DAG_ID, r, "promote")["version"]) for r in ids]
    assert promoted == sorted(promoted) and len(set(promoted)) == BACKFILL_RUNS, promoted
    row.notes.update(runs=BACKFILL_RUNS, retried_tasks=sum(
        n - 1 for r in ids for n in tries(topology, r).values()))
    report(row, topology, finished)
    check_recovered(topology, set(ids), topology.live, tmp_path)


def _parameter(params: dict[str, str], name: str) -> str | None:
    """A stack parameter's value in a query-protocol call's form fields."""
    for field, value in params.items():
        if field.endswith(".ParameterKey") and value == name:
            return params.get(field.replace(".ParameterKey", ".ParameterValue"))
    return None


@pytest.mark.faults
def test_postgres_restarted_with_a_run_in_flight_every_component_reconnects(
        clean_faults: FaultTopology, tmp_path: Path) -> None:
    topology = clean_faults
    proxy = proxy_of(topology)
    row = Row("PostgreSQL restart with a run in flight", calls_from=len(proxy.calls))
    run = trigger(topology, {})
    wait_for_task_state(topology, run, "prepare_deployment", {"running"})
    row.injected_at = time.monotonic()
    topology.restart_postgres(down_for=3.0)
    # the scheduler and dag-processor exit when their database connection is refused;
    # Compose's restart policy starts them again, which this wait does too
    revived: list[str] = []
    states = wait_finished(topology, {run}, revived=revived)
    finished = time.monotonic()
    assert states == {run: "success"}, states
    topology.live[STABLE_STACK] = model_key(topology, run)
    for name in set(revived):  # what exited is healthy again
        topology.restart_check(name)
    row.notes.update(retried_tasks=sum(n - 1 for n in tries(topology, run).values()),
                     restarted_by_policy=sorted(set(revived)))
    report(row, topology, finished)
    check_recovered(topology, {run}, topology.live, tmp_path)
