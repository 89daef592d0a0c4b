"""Versions and the live alias on the embedded AWS's Lambda API: publish once per identity,
promotion strategies step by step, alarm rollback, on-demand rollback, retention."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from tdv_airflow.core import alarms, rollout, versions
from tdv_airflow.exceptions import InvalidInputError, RolloutError, UnknownVersionError

FN = "tdv-rollout-test"


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("lbd_request_processor.py", "def handler(e, c):\n    return {}\n")
    return buf.getvalue()


@pytest.fixture
def lam(boto_session: Any, aws: Any) -> Any:
    """A Lambda client with one function whose $LATEST serves model m1."""
    client = boto_session.client("lambda", endpoint_url=aws.endpoint_url)
    iam = boto_session.client("iam", endpoint_url=aws.endpoint_url)
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    client.create_function(FunctionName=FN, Runtime="python3.11", Role=role,
                           Handler="lbd_request_processor.handler", Code={"ZipFile": _zip()},
                           Environment={"Variables": _env("m1")})
    return client


def _env(model: str) -> dict[str, str]:
    return {"TDV_BUCKET": "b", "TDV_MODEL_KEY": f"models/{model}.pkl",
            "TDV_MODEL_SHA256": model * 8, "TDV_PREPRO_KEY": f"p/{model}.dill"}


def _deploy(lam: Any, model: str) -> versions.VersionRecord:
    """Change $LATEST to ``model`` (as a stack update would) and publish it."""
    if model != "m1":
        lam.update_function_configuration(FunctionName=FN,
                                          Environment={"Variables": _env(model)})
    identity = versions.function_identity({"ModelKey": model})
    return versions.publish_candidate(lam, FN, identity, identity, run_id=f"run-{model}")


def test_publish_is_once_per_identity_and_records_its_origin(lam: Any) -> None:
    first = _deploy(lam, "m1")
    again = versions.publish_candidate(lam, FN, first.identity or "", "other-identity")
    assert again.version == first.version == "1"
    assert (first.model_key, first.run_id) == ("models/m1.pkl", "run-m1")
    assert len(versions.list_versions(lam, FN)) == 1
    with pytest.raises(RolloutError, match="another run updated the stack"):
        versions.publish_candidate(lam, FN, "not-published", "what-the-stack-runs")


def test_description_fits_lambdas_limit_with_a_long_run_id() -> None:
    text = versions.describe_origin("a" * 16, "manual__" + "x" * 400)
    assert len(text) <= 256 and '"run":"manual__x' in text


def test_canary_steps_bake_then_promote_and_a_retry_changes_nothing(lam: Any) -> None:
    v1 = _deploy(lam, "m1").version
    first = rollout.advance(lam, FN, v1, [1.0], 60)
    assert (first.phase, first.changed, first.alias.version) == ("live", True, v1)
    v2 = _deploy(lam, "m2").version
    plan = rollout.plan("canary", 0.1)
    started = rollout.advance(lam, FN, v2, plan, 60, now=1000.0)
    assert (started.phase, started.weight, started.until) == ("baking", 0.1, 1060.0)
    alias = rollout.read_alias(lam, FN)
    assert alias is not None and alias.version == v1 and alias.weights == {v2: 0.1}
    waiting = rollout.advance(lam, FN, v2, plan, 60, now=1030.0)
    assert (waiting.phase, waiting.changed) == ("baking", False)
    done = rollout.advance(lam, FN, v2, plan, 60, now=1061.0)
    assert (done.phase, done.alias.version, dict(done.alias.weights)) == ("live", v2, {})
    assert done.alias.previous == v1
    retried = rollout.advance(lam, FN, v2, plan, 60, now=1100.0)
    assert (retried.phase, retried.changed) == ("live", False)
    live = rollout.describe_live(lam, FN)
    assert live["serving"][0]["model_s3_key"] == "models/m2.pkl"
    assert live["serving"][0]["share"] == 1.0


def test_an_alarm_during_a_bake_sets_the_weights_back(lam: Any) -> None:
    v1 = _deploy(lam, "m1").version
    rollout.advance(lam, FN, v1, [1.0], 60)
    v2 = _deploy(lam, "m2").version
    rollout.advance(lam, FN, v2, [0.25, 0.5, 0.75, 1.0], 60, now=0.0)
    alarm = [{"name": "x-live-errors", "reason": "Threshold Crossed", "since": "t"}]
    back = rollout.advance(lam, FN, v2, [0.25, 0.5, 0.75, 1.0], 60, alarm, now=10.0)
    assert back.phase == "rolled_back"
    alias = rollout.read_alias(lam, FN)
    assert alias is not None and (alias.version, dict(alias.weights)) == (v1, {})


def test_linear_plan_walks_every_step(lam: Any) -> None:
    v1 = _deploy(lam, "m1").version
    rollout.advance(lam, FN, v1, [1.0], 60)
    v2 = _deploy(lam, "m2").version
    plan = rollout.plan("linear", linear_steps=3)
    seen = []
    for t in (0.0, 61.0, 122.0):
        step = rollout.advance(lam, FN, v2, plan, 60, now=t)
        seen.append((step.phase, step.weight))
    assert seen == [("baking", 0.3333), ("baking", 0.6667), ("live", 1.0)]


def test_rollback_to_previous_is_one_change_and_retry_safe(lam: Any) -> None:
    v1 = _deploy(lam, "m1").version
    rollout.advance(lam, FN, v1, [1.0], 60)
    v2 = _deploy(lam, "m2").version
    rollout.advance(lam, FN, v2, [1.0], 60)
    alias, changed = rollout.rollback(lam, FN, "previous", operation="run-a/rollback")
    assert (alias.version, changed) == (v1, True)
    alias, changed = rollout.rollback(lam, FN, "previous", operation="run-a/rollback")
    assert (alias.version, changed) == (v1, False)
    alias, changed = rollout.rollback(lam, FN, v2, operation="run-b/rollback")
    assert (alias.version, changed) == (v2, True)
    with pytest.raises(UnknownVersionError, match="no version '9'"):
        rollout.rollback(lam, FN, "9")


def test_retention_keeps_newest_live_and_previous(lam: Any) -> None:
    made = [_deploy(lam, m).version for m in ("m1", "m2", "m3", "m4")]
    rollout.advance(lam, FN, made[0], [1.0], 60)
    rollout.advance(lam, FN, made[1], [1.0], 60)  # live 2, previous 1
    deleted = versions.prune(lam, FN, 1, protect={"2", "1"})
    assert deleted == ["3"]
    assert [r.version for r in versions.list_versions(lam, FN)] == ["1", "2", "4"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: rollout.plan("blue-green"), "invalid strategy 'blue-green'"),
    (lambda: rollout.plan("canary", 1.5), "invalid canary_weight 1.5"),
    (lambda: rollout.plan("canary", 0), "strictly between 0 and 1"),
    (lambda: rollout.plan("linear", linear_steps=1), "invalid linear_steps 1"),
    (lambda: rollout.check_bake(0), "invalid bake_seconds 0"),
    (lambda: rollout.check_bake(-5), "invalid bake_seconds -5"),
    (lambda: versions.check_version("$LATEST"), "invalid version '\\$LATEST'"),
    (lambda: versions.check_version("0"), "invalid version '0'"),
    (lambda: versions.prune(None, FN, 0, ()), "invalid keep_versions 0"),
    (lambda: alarms.check_alarm_names("one"), "invalid alarm_names 'one'"),
])
def test_bad_input_is_refused_naming_the_value(call: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        call()


def test_a_missing_alarm_is_an_error_and_a_forced_one_fires(boto_session: Any,
                                                             aws: Any) -> None:
    cw = boto_session.client("cloudwatch", endpoint_url=aws.endpoint_url)
    cw.put_metric_alarm(AlarmName="a1", MetricName="Errors", Namespace="AWS/Lambda",
                        Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                        ComparisonOperator="GreaterThanOrEqualToThreshold")
    assert alarms.firing(cw, ["a1"]) == []
    cw.set_alarm_state(AlarmName="a1", StateValue="ALARM", StateReason="forced by test")
    assert [(f["name"], f["reason"]) for f in alarms.firing(cw, ["a1"])] == [
        ("a1", "forced by test")]
    with pytest.raises(InvalidInputError, match="do not exist"):
        alarms.firing(cw, ["a1", "nope"])


@pytest.mark.parametrize("code", ["PreconditionFailedException",
                                  "InvalidParameterValueException"])
def test_a_function_changed_while_publishing_publishes_nothing(code: str) -> None:
    """AWS refuses a stale RevisionId (412) or CodeSha256 (400): the emulator cannot race
    a stack update between the read and the publish, so the answers are stubbed."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s")
    with Stubber(client) as stubber:
        stubber.add_response("list_versions_by_function", {"Versions": []},
                             {"FunctionName": FN})
        stubber.add_response("get_function_configuration",
                             {"CodeSha256": "abc=", "RevisionId": "r1", "Version": "$LATEST"},
                             {"FunctionName": FN})
        stubber.add_client_error("publish_version", code, "changed", 412
                                 if code.startswith("Precondition") else 400)
        with pytest.raises(RolloutError, match="changed between reading and publishing"):
            versions.publish_candidate(client, FN, "id", "id", "run")
        stubber.assert_no_pending_responses()


def test_a_promotion_killed_before_the_permission_is_repaired_by_its_retry(lam: Any) -> None:
    """The alias exists (the first promotion's CreateAlias went through) but the task died
    before AddPermission: the retry changes no weight and adds the permission."""
    import json

    v1 = _deploy(lam, "m1").version
    rollout.advance(lam, FN, v1, [1.0], 60)  # what the killed task managed to do
    target = rollout.Target(FN, FN, "arn:aws:execute-api:us-east-1:123456789012:api/*/POST/"
                            "predict", [])
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_policy(FunctionName=FN, Qualifier="live")
    step = rollout.promote_step(lam, target, v1, [1.0], 60)
    assert (step.phase, step.changed) == ("live", False)
    policy = json.loads(lam.get_policy(FunctionName=FN, Qualifier="live")["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == [rollout.PERMISSION_SID]
    rollout.promote_step(lam, target, v1, [1.0], 60)  # again: nothing added twice
    policy = json.loads(lam.get_policy(FunctionName=FN, Qualifier="live")["Policy"])
    assert len(policy["Statement"]) == 1
