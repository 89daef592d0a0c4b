"""Runs of the example DAG under a fault, and the checks every fault row ends with.

A fault row triggers runs through the REST API, injects its fault, waits until every run
is finished, then calls :func:`check_recovered`: no run lost (each one ``success``), no
task left running anywhere, no stack but the expected ones, and the live alias of each
expected stack serving the model its last run deployed, answering a real request.

:func:`report` appends the row's measures (seconds from injection to success, AWS calls
the proxy saw) to the file named by ``TDV_FAULT_REPORT``, which ``bench/bench_faults.py``
prints as a table.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from testkit.airflow_api import FINISHED_RUN
from testkit.example_dag import DAG_ID
from testkit.fault_proxy import Call, FaultProxy
from testkit.fault_topology import FaultTopology

#: Task instance states that mean "still to do or doing".
UNFINISHED = {"running", "queued", "scheduled", "deferred", "up_for_retry",
              "up_for_reschedule", "restarting", None}
#: The predictions of the DAG's default smoke payload.
EXPECTED_PREDICTIONS = [0, 2]
#: The example DAG's default stack (``stack_mode=stable``).
STABLE_STACK = "tdv-iris"


@dataclass
class Row:
    """What one fault row measured.

    :param fault: the row's name.
    :param injected_at: ``time.monotonic()`` at the injection.
    :param calls_from: ``len(proxy.calls)`` when the row's runs started.
    :param notes: anything else worth printing.
    """

    fault: str
    injected_at: float = 0.0
    calls_from: int = 0
    notes: dict[str, Any] = field(default_factory=dict)


def proxy_of(topology: FaultTopology) -> FaultProxy:
    """The topology's fault proxy (started with the topology).

    :param topology: the running topology.
    """
    assert topology.proxy is not None, "the fault proxy is not running"
    return topology.proxy


def model_key(topology: FaultTopology, run_id: str) -> str:
    """The model key a run's ``train_model`` task returned.

    :param topology: the running topology.
    :param run_id: the run.
    """
    return str(topology.api().xcom(DAG_ID, run_id, "train_model", "model_s3_key"))


def trigger(topology: FaultTopology, conf: dict[str, Any],
            logical_date: datetime | None = None) -> str:
    """Trigger one run of the example DAG; its run id.

    :param topology: the running topology.
    :param conf: the run's conf.
    :param logical_date: its logical date (``None``: a manual run without one).
    """
    return str(topology.api().trigger(DAG_ID, conf, logical_date)["dag_run_id"])


def wait_finished(topology: FaultTopology, run_ids: set[str], timeout: float = 420.0,
                  revived: list[str] | None = None) -> dict[str, str]:
    """Wait until every run in ``run_ids`` is finished; their states.

    :param topology: the running topology (checked alive on every poll).
    :param run_ids: the runs.
    :param timeout: seconds.
    :param revived: when given, a service that exited is started again (Compose's
        ``restart: always``) and its name appended here, instead of failing the wait.
    """
    api = topology.api()
    deadline = time.monotonic() + timeout
    while True:
        if revived is not None:
            revived.extend(topology.revive())
        topology.check_alive()
        try:
            runs = api.dag_runs(DAG_ID)
        except Exception:  # noqa: BLE001 - the api-server may be reconnecting; poll again
            if revived is None or time.monotonic() > deadline:
                raise
            time.sleep(1.0)
            continue
        states = {r["dag_run_id"]: r["state"] for r in runs if r["dag_run_id"] in run_ids}
        if set(states) == run_ids and all(s in FINISHED_RUN for s in states.values()):
            return states
        if time.monotonic() > deadline:
            tis = [(t["dag_run_id"], t["task_id"], t["state"], t["try_number"])
                   for t in api.task_instances(DAG_ID) if t["state"] != "success"]
            raise AssertionError(f"runs not finished after {timeout:.0f} s: {states}; task "
                                 f"instances {tis}\n{topology.diagnostics()}")
        time.sleep(1.0)


def wait_for_task_state(topology: FaultTopology, run_id: str, task_id: str, states: set[str],
                        timeout: float = 300.0) -> dict[str, Any]:
    """Wait until a task instance is in one of ``states``; the task instance.

    :param topology: the running topology.
    :param run_id: the run.
    :param task_id: the task.
    :param states: the states awaited.
    :param timeout: seconds.
    """
    api = topology.api()
    deadline = time.monotonic() + timeout
    while True:
        topology.check_alive()
        found = api.task_instances(DAG_ID, task_id, run_id=run_id)
        if found and found[0]["state"] in states:
            return dict(found[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"{task_id} of {run_id} never reached {states}: {found}\n"
                                 f"{topology.diagnostics()}")
        time.sleep(0.5)


def live_model_key(topology: FaultTopology, stack_name: str) -> str:
    """``TDV_MODEL_KEY`` of the version the stack's alias ``live`` points at.

    :param topology: the topology.
    :param stack_name: the stack.
    """
    from tdv_airflow.core.stacks import outputs_of

    cfn, lam = topology.boto3_client("cloudformation"), topology.boto3_client("lambda")
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    function = outputs_of(stack)["FunctionName"]
    alias = lam.get_alias(FunctionName=function, Name="live")
    assert not (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights"), (
        f"live of {stack_name} still splits traffic: {alias}")
    config = lam.get_function_configuration(FunctionName=function,
                                            Qualifier=alias["FunctionVersion"])
    return str(config["Environment"]["Variables"]["TDV_MODEL_KEY"])


def endpoint_predictions(topology: FaultTopology, stack_name: str, workdir: Path) -> Any:
    """What the stack's live endpoint answers to the DAG's default smoke payload.

    :param topology: the topology.
    :param stack_name: the stack.
    :param workdir: a folder for the local function's layout cache.
    """
    from tdv_airflow import UserAwsAuth
    from tdv_airflow.core.clients import AwsClients
    from tdv_airflow.endpoint.client import call_stack_endpoint
    from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY
    from testkit.deployed import serving

    auth = UserAwsAuth(FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY,
                       endpoint_url=topology.aws.endpoint_url)
    clients = AwsClients.from_auth(auth, topology.aws.region)
    sample = {"instances": [
        {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
        {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3}]}
    stack = clients.cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
    with serving(clients, stack_name, workdir) as server:
        # the stack's own endpoint, served locally: signed as the stack's auth mode asks
        here = {**stack, "Outputs": [{**o, "OutputValue": server.url}
                                     if o["OutputKey"] == "ApiEndpoint" else o
                                     for o in stack["Outputs"]]}
        answer = call_stack_endpoint(clients, here, sample)
    assert answer.status == 200, (answer.status, answer.body)
    return answer.json()["predictions"]


def check_recovered(topology: FaultTopology, run_ids: set[str], live: dict[str, str],
                    workdir: Path) -> None:
    """The checks after every fault row.

    :param topology: the topology.
    :param run_ids: the row's runs: each must have succeeded.
    :param live: stack name -> the model key its alias ``live`` must serve; exactly these
        stacks (and no other of the example DAG's) may exist.
    :param workdir: a folder for the local function's layout cache.
    """
    api = topology.api()
    states = {r["dag_run_id"]: r["state"] for r in api.dag_runs(DAG_ID)}
    assert {run: states.get(run) for run in run_ids} == dict.fromkeys(run_ids, "success"), (
        f"a run was lost or failed: {states}\n{topology.diagnostics()}")
    unfinished = [(t["dag_run_id"], t["task_id"], t["state"]) for t in api.task_instances(DAG_ID)
                  if t["state"] in UNFINISHED and t["dag_run_id"] in states
                  and states[t["dag_run_id"]] in FINISHED_RUN]
    assert unfinished == [], f"task instances left unfinished: {unfinished}"
    cfn = topology.boto3_client("cloudformation")
    stacks = {s["StackName"]: s["StackStatus"] for s in cfn.describe_stacks()["Stacks"]
              if s["StackName"].startswith("tdv-") and s["StackStatus"] != "DELETE_COMPLETE"}
    assert set(stacks) == set(live), f"stacks {stacks}, expected exactly {sorted(live)}"
    assert all(s.endswith("_COMPLETE") and "ROLLBACK" not in s for s in stacks.values()), stacks
    for stack_name, model_key in live.items():
        assert live_model_key(topology, stack_name) == model_key, stack_name
        assert endpoint_predictions(topology, stack_name, workdir) == EXPECTED_PREDICTIONS


def tries(topology: FaultTopology, run_id: str) -> dict[str, int]:
    """Task id -> its number of tries, in one run.

    :param topology: the topology.
    :param run_id: the run.
    """
    return {t["task_id"]: int(t["try_number"])
            for t in topology.api().task_instances(DAG_ID, run_id=run_id)}


def actions(calls: list[Call]) -> Counter[str]:
    """How many times each action was called (attempts included).

    :param calls: calls the proxy recorded.
    """
    return Counter(c.action for c in calls)


def report(row: Row, topology: FaultTopology, finished_at: float) -> dict[str, Any]:
    """Record a row's measures (and append them to ``$TDV_FAULT_REPORT`` when set).

    :param row: the row.
    :param topology: its topology.
    :param finished_at: ``time.monotonic()`` when its runs had all succeeded.
    """
    assert topology.proxy is not None
    calls = topology.proxy.since(row.calls_from)
    entry = {"fault": row.fault, "seconds_to_success": round(finished_at - row.injected_at, 1),
             "aws_calls": len(calls), "faulted_calls": sum(1 for c in calls if c.fault),
             **row.notes}
    target = os.environ.get("TDV_FAULT_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(json.dumps(entry) + "\n")
    print(f"\n{entry}")
    return entry
