"""AWS faults on the native Celery topology: throttling absorbed by botocore's retries,
and an outage longer than them, survived by the task's Airflow retry.

The faults come from the proxy between the tasks and the local AWS
(:mod:`testkit.fault_proxy`); the tasks' clients run with the provider's default retry
configuration (``tdv_airflow.core.clients.DEFAULT_BOTOCORE_CONFIG``, standard mode).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from testkit.example_dag import DAG_ID
from testkit.fault_proxy import Call
from testkit.fault_runs import (
    STABLE_STACK,
    Row,
    actions,
    check_recovered,
    model_key,
    proxy_of,
    report,
    tries,
    trigger,
    wait_finished,
)
from testkit.fault_topology import FaultTopology

#: The share of calls throttled.
THROTTLED_SHARE = 0.25



@pytest.mark.faults
def test_throttling_on_a_share_of_calls_is_absorbed_by_botocore_retries(
        clean_faults: FaultTopology, tmp_path: Path) -> None:
    topology = clean_faults
    proxy = proxy_of(topology)
    row = Row(f"AWS throttling ({THROTTLED_SHARE:.0%} of calls)", calls_from=len(proxy.calls))
    proxy.throttle(THROTTLED_SHARE)
    row.injected_at = time.monotonic()
    run = trigger(topology, {})
    states = wait_finished(topology, {run})
    finished = time.monotonic()
    proxy.throttle(0)
    assert states == {run: "success"}, states
    topology.live[STABLE_STACK] = model_key(topology, run)

    calls = proxy.since(row.calls_from)
    throttled = [c for c in calls if c.fault == "throttled"]
    # the share is drawn per call: enough calls, of more than one service, were refused
    assert len(throttled) >= 5, f"too few calls were throttled to show anything: {throttled}"
    assert len({c.service for c in throttled}) >= 2, actions(throttled)
    # every throttled call was retried by botocore and went through: no task needed
    # Airflow's retry, and no stack operation was sent twice
    assert set(tries(topology, run).values()) == {1}, tries(topology, run)
    accepted = [(c.action, c.params.get("StackName")) for c in calls
                if c.action in {"CreateStack", "UpdateStack"} and c.status == 200]
    assert accepted == [("UpdateStack", STABLE_STACK)], accepted
    row.notes.update(throttled=len(throttled), throttled_by_service=dict(
        actions([Call(c.service, c.service, "", "", 1, 0, "", 0) for c in throttled])))
    report(row, topology, finished)
    check_recovered(topology, {run}, topology.live, tmp_path)


@pytest.mark.faults
def test_an_outage_longer_than_the_retries_fails_clearly_and_the_airflow_retry_completes(
        clean_faults: FaultTopology, tmp_path: Path) -> None:
    topology = clean_faults
    proxy = proxy_of(topology)
    row = Row("AWS outage longer than botocore's retries", calls_from=len(proxy.calls))
    exhausted = threading.Event()

    def go_down(call: Call) -> None:
        row.injected_at = time.monotonic()
        proxy.outage(True)

    def end_when_exhausted() -> None:
        # the endpoint comes back once a call has spent all its attempts on the outage
        while not exhausted.is_set():
            down = [c for c in proxy.since(row.calls_from) if c.fault == "outage"]
            if any(c.max_attempts and c.attempt >= c.max_attempts for c in down):
                time.sleep(1.0)
                proxy.outage(False)
                exhausted.set()
            time.sleep(0.2)

    proxy.on(lambda c: c.service == "cloudformation" and c.action in {
        "CreateStack", "UpdateStack"}, go_down, when="before")
    watcher = threading.Thread(target=end_when_exhausted, daemon=True)
    watcher.start()
    run = trigger(topology, {})
    try:
        states = wait_finished(topology, {run})
    finally:
        exhausted.set()
        proxy.outage(False)
    finished = time.monotonic()
    assert states == {run: "success"}, states
    topology.live[STABLE_STACK] = model_key(topology, run)
    assert row.injected_at, "the outage never started: no stack call was made"

    # the first try failed naming the endpoint and the step; the second one completed
    assert tries(topology, run)["create_stack"] == 2, tries(topology, run)
    first = next((topology.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run}"
                  / "task_id=create_stack").glob("attempt=1*")).read_text()
    assert "AwsUnreachableError" in first, first[-3000:]
    assert f"could not reach {proxy.endpoint_url}" in first, first[-3000:]
    assert f"during create or update of stack '{STABLE_STACK}'" in first, first[-3000:]
    down = [c for c in proxy.since(row.calls_from) if c.fault == "outage"]
    row.notes.update(refused_calls=len(down),
                     attempts_per_call=max(c.attempt for c in down))
    report(row, topology, finished)
    check_recovered(topology, {run}, topology.live, tmp_path)
