"""The example DAG's gate on the emulator, run as a user runs it (``airflow dags test``):
a bad model never takes traffic (and the good run's and the bad run's outcomes each reach
the local SMTP server as one mail), a canary rolls back by itself on an alarm and goes live
without one, and ``rollback_endpoint`` moves the alias back from a UI-style trigger."""

from __future__ import annotations

import hashlib
import html
import json
import pickle
import subprocess
import threading
import time
from typing import Any

import pytest

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.rollout import read_alias
from tdv_airflow.core.stacks import describe
from tdv_airflow.local.request import request_stack
from testkit.example_dag import DAG_ID, wait_settings
from testkit.mailbox import RECIPIENT, SENDER, body_of, local_smtp_server
from tests.conftest import AIRFLOW

pytestmark = pytest.mark.e2e

STACK = "tdv-iris"
#: The logical dates of a good model's run and of a bad model's.
GOOD, BAD = "2025-03-01", "2025-03-02"
SAMPLE = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


def _key(date: str) -> str:
    """The model key the example DAG uses for a run of logical date ``date``."""
    return f"models/iris/{date.replace('-', '')}T000000/model.pkl"


def _put_constant_model(s3: Any, bucket: str, date: str, answer: int) -> None:
    """Store, where the run of ``date`` looks first, a model answering ``answer`` always
    (the DAG then does not retrain): a model that passes training but is wrong."""
    from sklearn.datasets import load_iris
    from sklearn.dummy import DummyClassifier

    features, labels = load_iris(return_X_y=True)
    model = DummyClassifier(strategy="constant", constant=answer).fit(features, labels)
    s3.put_object(Bucket=bucket, Key=_key(date), Body=pickle.dumps(model))


def _dag_test(airflow_env: dict[str, str], date: str, conf: dict[str, Any] | None = None,
              dag_id: str = DAG_ID, mode: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [AIRFLOW, "dags", "test", dag_id, date] if date else [AIRFLOW, "dags", "test", dag_id]
    env = {**airflow_env, **(wait_settings(mode) if mode else {})}
    return subprocess.run([*argv, "-c", json.dumps(conf or {})], env=env,
                          capture_output=True, text=True, timeout=900, check=False)


def _tail(done: subprocess.CompletedProcess[str], lines: int = 60) -> str:
    return "\n".join((done.stdout + done.stderr).splitlines()[-lines:])


@pytest.fixture
def clients(boto_session: Any, aws: Any) -> AwsClients:
    return AwsClients(lambda s: boto_session.client(s, endpoint_url=aws.endpoint_url),
                      "us-east-1")


def _predict(clients: AwsClients) -> list[Any]:
    """What the endpoint answers through its live alias (as API Gateway routes)."""
    stack = describe(clients.cloudformation, STACK)
    assert stack is not None
    answer = request_stack(clients, stack, SAMPLE)
    assert answer.status == 200, answer.body
    return list(json.loads(answer.body)["predictions"])


def test_a_bad_model_is_refused_before_any_traffic_and_each_outcome_mails_one_message(
        clients: AwsClients, s3: Any, cfn: Any, dag_bucket: str, airflow_env: dict[str, str],
        read_last_run: Any) -> None:
    with local_smtp_server() as mailbox:  # smtp_default names a real local SMTP server
        env = {**airflow_env, "AIRFLOW_CONN_SMTP_DEFAULT": mailbox.connection()}
        good = _dag_test(env, GOOD)
        assert good.returncode == 0, _tail(good)
        assert _predict(clients) == [0, 2]
        live = mailbox.wait_for(1)
        assert [m["Subject"] for m in live] == [f"[tdv-airflow] {STACK}: version 1 is live"], \
            _tail(good)

        _put_constant_model(s3, dag_bucket, BAD, 1)
        bad = _dag_test(env, BAD)
        run = read_last_run(DAG_ID)
        assert run["state"] == "failed", _tail(bad)
        assert run["tis"]["validate_candidate"]["state"] == "failed"
        assert run["tis"]["promote"]["state"] in ("upstream_failed", None)
        output = bad.stdout + bad.stderr
        assert "candidate version 2 of stack 'tdv-iris' answered wrongly" in output
        assert "predictions [1, 1], expected [0, 2]" in output
        alias = read_alias(clients.lambda_, "tdv-iris")
        assert alias is not None and (alias.version, dict(alias.weights)) == ("1", {})
        assert _predict(clients) == [0, 2]
        mails = mailbox.wait_for(2)
    assert [m["Subject"] for m in mails[1:]] == [
        f"[tdv-airflow] {STACK}: candidate version 2 rejected, it answered wrongly"], _tail(bad)
    assert mailbox.envelopes == [(SENDER, [RECIPIENT])] * 2  # one mail each, no retry's

    body = html.unescape(body_of(mails[0]))
    endpoint = {o["OutputKey"]: o["OutputValue"] for o in cfn.describe_stacks(
        StackName=STACK)["Stacks"][0]["Outputs"]}["ApiEndpoint"]
    model = s3.get_object(Bucket=dag_bucket, Key=_key(GOOD))["Body"].read()
    facts = (endpoint, _key(GOOD), hashlib.sha256(model).hexdigest(),
             "1 (previous: None; strategy all_at_once)", '"sepal_length": 5.1',
             "expected predictions [0, 2]", "got predictions [0, 2] (status 200)",
             f"{DAG_ID} / ")
    assert [f for f in facts if f not in body] == [], body

    body = html.unescape(body_of(mails[1]))
    facts = (f"Stack</th><td><pre style='margin:0;white-space:pre-wrap'>{STACK}<",
             "Candidate version</th><td><pre style='margin:0;white-space:pre-wrap'>2<",
             "predictions [0, 2]", "status 200, predictions [1, 1]",
             "predictions [1, 1], expected [0, 2]", '"sepal_length": 5.1',
             "unchanged: the live alias still serves what it served")
    assert [f for f in facts if f not in body] == [], body
    for mail in mails:
        text = body_of(mail)
        assert airflow_env["AWS_SECRET_ACCESS_KEY"] not in text
        assert "Signature" not in text and "X-Amz" not in text


def _force_alarm_during_bake(clients: AwsClients, alarm: str, stop: threading.Event,
                             seen: list[dict[str, float]]) -> None:
    """Wait until the candidate takes a share, then put ``alarm`` into ALARM."""
    while not stop.is_set():
        alias = read_alias(clients.lambda_, "tdv-iris")
        if alias is not None and alias.weights:
            seen.append(dict(alias.weights))
            clients.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM",
                                               StateReason="Threshold Crossed: test canary")
            return
        time.sleep(0.3)


def test_canary_rolls_back_on_an_alarm_and_goes_live_without_one(
        clients: AwsClients, s3: Any, dag_bucket: str, airflow_env: dict[str, str],
        read_last_run: Any) -> None:
    first = _dag_test(airflow_env, "2025-04-01")
    assert first.returncode == 0, _tail(first)
    outputs = {o["OutputKey"]: o["OutputValue"]
               for o in describe(clients.cloudformation, STACK)["Outputs"]}
    alarm = f"{STACK}-live-errors"
    assert alarm in outputs["AlarmNames"].split(",")

    _put_constant_model(s3, dag_bucket, "2025-04-02", 1)
    conf = {"strategy": "canary", "canary_weight": 0.2, "bake_seconds": 30,
            "smoke_expected": [1, 1]}
    stop, seen = threading.Event(), []
    forcer = threading.Thread(target=_force_alarm_during_bake,
                              args=(clients, alarm, stop, seen), daemon=True)
    forcer.start()
    canary = _dag_test(airflow_env, "2025-04-02", conf)
    stop.set()
    forcer.join(timeout=5)
    run = read_last_run(DAG_ID)
    assert seen == [{"2": 0.2}], _tail(canary)
    assert run["state"] == "failed" and run["tis"]["promote"]["state"] == "failed", _tail(canary)
    output = canary.stdout + canary.stderr
    assert f"{alarm} since" in output and "Threshold Crossed: test canary" in output
    alias = read_alias(clients.lambda_, "tdv-iris")
    assert alias is not None and (alias.version, dict(alias.weights)) == ("1", {})
    assert _predict(clients) == [0, 2]

    clients.cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="quiet")
    _put_constant_model(s3, dag_bucket, "2025-04-03", 1)
    calm = _dag_test(airflow_env, "2025-04-03", {**conf, "bake_seconds": 3},
                     mode="reschedule")
    run = read_last_run(DAG_ID)
    assert run["state"] == "success", _tail(calm)
    assert run["tis"]["promote"]["reschedules"] >= 1, run["tis"]  # it waited between steps
    promoted = run["xcoms"]["promote/return_value"]
    assert promoted["strategy"] == "canary"
    assert [(s["version"], s["share"]) for s in promoted["live"]["serving"]] == [
        (promoted["version"], 1.0)]
    assert promoted["live"]["previous"] == "1"


def test_rollback_from_a_ui_style_trigger_answers_with_that_versions_model(
        clients: AwsClients, s3: Any, dag_bucket: str, airflow_env: dict[str, str],
        read_last_run: Any) -> None:
    assert _dag_test(airflow_env, "2025-05-01").returncode == 0
    _put_constant_model(s3, dag_bucket, "2025-05-02", 1)
    second = _dag_test(airflow_env, "2025-05-02", {"smoke_expected": [1, 1]})
    assert second.returncode == 0, _tail(second)
    assert _predict(clients) == [1, 1]

    back = _dag_test(airflow_env, "", {"stack_name": STACK, "to_version": "1"},
                     dag_id="rollback_endpoint")
    run = read_last_run("rollback_endpoint")
    assert run["state"] == "success", _tail(back)
    result = run["xcoms"]["rollback/return_value"]
    assert result["changed"] is True
    assert [s["version"] for s in result["live"]["serving"]] == ["1"]
    assert _predict(clients) == [0, 2]
