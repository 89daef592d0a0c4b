"""The Celery worker SIGKILLed at three exact points of a deployment, then restarted.

Each row kills the worker with every process it started (task processes included) at a
call the fault proxy sees, restarts it, and lets Airflow do the rest: the scheduler finds
the task without heartbeat (``[scheduler] task_instance_heartbeat_timeout``), fails the
try, and the task's retry runs on the new worker. What the retry then does is what each
row checks, against the calls the proxy recorded and the state of the local AWS.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from testkit.example_dag import DAG_BUCKET, DAG_ID
from testkit.fault_proxy import Call
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
)
from testkit.fault_topology import FaultTopology

#: A dependency layer no other row builds (a new content-addressed key): scikit-learn
#: (the model needs it) and one more small installed distribution, on a stack of its own.
FRESH_LAYER_CONF = {"dependencies": {"from_installed": ["scikit-learn", "tabulate"]},
                   "stack_mode": "per_version"}
_ALIAS_LIVE = re.compile(r"/functions/[^/]+/aliases/live$")
_PUBLISH = re.compile(r"/functions/[^/]+/versions$")


class Killer:
    """Kills the worker from the proxy's thread when a call matches, then restarts it on
    the test's thread (a restart waits for the worker's health check).

    :param topology: the topology.
    :param row: the row whose injection time it records.
    """

    def __init__(self, topology: FaultTopology, row: Row) -> None:
        self.topology = topology
        self.row = row
        self.killed = threading.Event()
        self.call: Call | None = None

    def __call__(self, call: Call) -> None:
        self.row.injected_at = time.monotonic()
        self.call = call
        self.topology.kill("worker")
        self.killed.set()

    def restart_when_killed(self, timeout: float = 420.0) -> Call:
        """Wait for the kill, restart the worker; the call that triggered the kill."""
        assert self.killed.wait(timeout), (
            f"the worker was never killed: no matching call\n{self.topology.diagnostics()}")
        self.topology.restart("worker")
        assert self.call is not None
        return self.call



def _key_of(call: Call) -> str:
    return call.path.split("?", 1)[0].split(f"/{DAG_BUCKET}/", 1)[1]


@pytest.mark.faults
def test_worker_killed_during_prepare_uploads_resends_only_what_was_incomplete(
        clean_faults: FaultTopology, tmp_path: Path) -> None:
    topology = clean_faults
    proxy = proxy_of(topology)
    row = Row("worker SIGKILL during prepare's uploads", calls_from=len(proxy.calls))
    killer = Killer(topology, row)
    # the second part of the first multipart upload (the dependency layer) never arrives
    parts: list[Call] = []

    def second_part(call: Call) -> bool:
        if call.service == "s3" and call.action == "UploadPart":
            parts.append(call)
        return len(parts) >= 2

    proxy.on(second_part, killer, when="before")
    run = trigger(topology, FRESH_LAYER_CONF)
    killed_at = killer.restart_when_killed()
    interrupted = _key_of(killed_at)
    s3 = topology.boto3_client("s3")
    # nothing is under the content-addressed key while its upload is incomplete
    assert s3.list_objects_v2(Bucket=DAG_BUCKET, Prefix=interrupted).get("KeyCount") == 0
    states = wait_finished(topology, {run})
    finished = time.monotonic()
    assert states == {run: "success"}, states
    assert tries(topology, run)["prepare_deployment"] == 2, tries(topology, run)

    calls = proxy.since(row.calls_from)
    # the retry used the same keys: the layer under the key the killed try was sending,
    # complete, its bytes what the key says
    prepared = topology.api().xcom(DAG_ID, run, "prepare_deployment")
    assert interrupted in _all_keys(prepared), (interrupted, prepared)
    body = s3.get_object(Bucket=DAG_BUCKET, Key=interrupted)["Body"].read()
    assert hashlib.sha256(body).hexdigest() in interrupted, interrupted
    # what the killed try had completed was not sent again
    completed = [_key_of(c) for c in calls if c.at < row.injected_at and c.status == 200
                 and c.action in {"PutObject", "CompleteMultipartUpload"}]
    sent_after = [_key_of(c) for c in calls if c.at > row.injected_at and c.status == 200
                  and c.action in {"PutObject", "CompleteMultipartUpload"}]
    assert not set(completed) & set(sent_after), (completed, sent_after)
    # and the retry sent only the interrupted artifact: every other key was the same
    assert sent_after == [interrupted], sent_after
    # the killed try's incomplete upload is left to the bucket's lifecycle rule
    left = [u["Key"] for u in s3.list_multipart_uploads(Bucket=DAG_BUCKET).get("Uploads", [])]
    rules = s3.get_bucket_lifecycle_configuration(Bucket=DAG_BUCKET)["Rules"]
    assert any(r.get("AbortIncompleteMultipartUpload") for r in rules), rules
    row.notes.update(layer_mb=round(len(body) / 1e6, 1), incomplete_uploads_left=len(left),
                     completed_before_kill=len(completed))
    report(row, topology, finished)
    stack = topology.api().xcom(DAG_ID, run, "create_stack")["stack_name"]
    check_recovered(topology, {run}, {**topology.live, stack: model_key(topology, run)},
                    tmp_path)
    topology.delete_stacks([stack])


def _all_keys(prepared: Any) -> set[str]:
    """Every S3 key mentioned in prepare's return value."""
    found: set[str] = set()
    if isinstance(prepared, dict):
        for value in prepared.values():
            found |= _all_keys(value)
    elif isinstance(prepared, list):
        for value in prepared:
            found |= _all_keys(value)
    elif isinstance(prepared, str) and "/" in prepared:
        found.add(prepared)
    return found


@pytest.mark.faults
def test_worker_killed_right_after_cloudformation_accepted_the_update_waits_for_it(
        clean_faults: FaultTopology, tmp_path: Path) -> None:
    topology = clean_faults
    proxy = proxy_of(topology)
    row = Row("worker SIGKILL right after UpdateStack was accepted",
              calls_from=len(proxy.calls))
    killer = Killer(topology, row)
    proxy.on(lambda c: c.action == "UpdateStack" and c.status == 200, killer, when="after")
    run = trigger(topology, {})
    killer.restart_when_killed()
    states = wait_finished(topology, {run})
    finished = time.monotonic()
    assert states == {run: "success"}, states
    topology.live[STABLE_STACK] = model_key(topology, run)
    assert tries(topology, run)["create_stack"] == 2, tries(topology, run)

    calls = proxy.since(row.calls_from)
    updates = [(c.params.get("StackName"), c.status) for c in calls
               if c.action in {"CreateStack", "UpdateStack"}]
    # the retry found the update the killed try had started (same fingerprint): it was
    # not sent again as a change, and no stack was created
    assert [u for u in updates if u[1] == 200] == [(STABLE_STACK, 200)], updates
    created = topology.api().xcom(DAG_ID, run, "create_stack")
    assert created["stack_name"] == STABLE_STACK, created
    row.notes.update(stack_calls_after_kill=len(updates) - 1,
                     retry_operation=created.get("operation"))
    report(row, topology, finished)
    check_recovered(topology, {run}, topology.live, tmp_path)


@pytest.mark.faults
def test_worker_killed_during_a_canary_step_finishes_the_rollout_without_a_new_version(
        clean_faults: FaultTopology, tmp_path: Path) -> None:
    topology = clean_faults
    proxy = proxy_of(topology)
    row = Row("worker SIGKILL during a promotion step", calls_from=len(proxy.calls))
    killer = Killer(topology, row)
    proxy.on(lambda c: c.service == "lambda" and c.method == "PUT"
             and bool(_ALIAS_LIVE.search(c.path.split("?")[0])) and c.status in {200, 201},
             killer, when="after")
    run = trigger(topology, {"strategy": "canary", "canary_weight": 0.25, "bake_seconds": 10})
    killer.restart_when_killed()
    states = wait_finished(topology, {run})
    finished = time.monotonic()
    assert states == {run: "success"}, states
    topology.live[STABLE_STACK] = model_key(topology, run)
    assert tries(topology, run)["promote"] == 2, tries(topology, run)

    calls = proxy.since(row.calls_from)
    published = [c for c in calls if c.service == "lambda" and c.method == "POST"
                 and _PUBLISH.search(c.path.split("?")[0]) and c.status in {200, 201}]
    assert len(published) == 1, [(c.path, c.at) for c in published]
    validated = topology.api().xcom(DAG_ID, run, "validate_candidate")
    promoted = topology.api().xcom(DAG_ID, run, "promote")
    assert promoted["version"] == validated["version"], (promoted, validated)
    alias_updates = [c for c in calls if c.method == "PUT"
                     and _ALIAS_LIVE.search(c.path.split("?")[0]) and c.status in {200, 201}]
    row.notes.update(alias_updates=len(alias_updates))
    report(row, topology, finished)
    check_recovered(topology, {run}, topology.live, tmp_path)
