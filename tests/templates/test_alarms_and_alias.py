"""The shipped template for safe rollout: API Gateway invokes the ``live`` alias (never
``$LATEST``), the stack declares no version, alias nor invoke permission (the core owns
them), each version's environment names all of its artifacts, and the four alarms a
promotion watches exist with their parameters; on the emulator they are read back through
``cloudwatch.describe_alarms`` (once the alarm fidelity fix is registered)."""

from __future__ import annotations

import json
from typing import Any

from tdv_airflow.core.resources import default_template_path
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.local.moto_server import FIXES
from testkit.deployed import deploy_stack
from testkit.template_checks import evaluate

STACK = "tdv-alarms"
ALARMS = {"LiveErrorsAlarm": "live-errors", "LiveThrottlesAlarm": "live-throttles",
          "LiveDurationP99Alarm": "live-duration-p99", "Api5xxAlarm": "api-5xx"}
LIVE = [{"Name": "FunctionName", "Value": {"Ref": "PredictFunction"}},
        {"Name": "Resource", "Value": {"Fn::Sub": "${PredictFunction}:live"}}]


def template() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(default_template_path().read_text())
    return body


def test_the_api_invokes_the_live_alias_and_the_stack_owns_no_version() -> None:
    body = template()
    uri = body["Resources"]["PredictMethod"]["Properties"]["Integration"]["Uri"]["Fn::Sub"]
    assert uri.endswith("/functions/${PredictFunction.Arn}:live/invocations")
    types = {r["Type"] for r in body["Resources"].values()}
    assert not types & {"AWS::Lambda::Version", "AWS::Lambda::Alias",
                        "AWS::Lambda::Permission"}
    assert body["Outputs"]["LiveAlias"]["Value"] == "live"


def test_each_version_names_all_of_its_artifacts() -> None:
    env = template()["Resources"]["PredictFunction"]["Properties"]["Environment"]["Variables"]
    assert env["TDV_CODE_KEY"] == {"Ref": "CodeKey"}
    assert env["TDV_LAYER_KEY"] == {"Ref": "LayerKey"}
    assert env["TDV_DEPS_LAYER_KEY"] == {
        "Fn::If": ["HasDepsLayer", {"Ref": "DepsLayerKey"}, {"Ref": "AWS::NoValue"}]}


def test_the_alarms_watch_the_alias_and_the_stage() -> None:
    body = template()
    resources, params = body["Resources"], body["Parameters"]
    for logical_id, suffix in ALARMS.items():
        props = resources[logical_id]["Properties"]
        assert resources[logical_id]["Type"] == "AWS::CloudWatch::Alarm"
        assert props["AlarmName"] == {"Fn::Sub": f"${{AWS::StackName}}-{suffix}"}
        assert props["TreatMissingData"] == "notBreaching"
        assert props["Period"] == {"Ref": "AlarmPeriodSeconds"}
        assert props["EvaluationPeriods"] == {"Ref": "AlarmEvaluationPeriods"}
        assert "AlarmActions" not in props  # the rollback is the DAG's task
    lam = {k: resources[k]["Properties"] for k in ALARMS if k.startswith("Live")}
    assert [(p["MetricName"], p.get("Statistic", p.get("ExtendedStatistic")))
            for p in lam.values()] == [("Errors", "Sum"), ("Throttles", "Sum"),
                                       ("Duration", "p99")]
    assert all(p["Namespace"] == "AWS/Lambda" and p["Dimensions"] == LIVE
               for p in lam.values())
    api = {key: evaluate(body, value, {"FrontDoor": "REST"})  # the default front door
           for key, value in resources["Api5xxAlarm"]["Properties"].items()}
    assert (api["Namespace"], api["MetricName"], api["Statistic"]) == (
        "AWS/ApiGateway", "5XXError", "Sum")
    assert api["Dimensions"] == [
        {"Name": "ApiName", "Value": {"Fn::Sub": "${AWS::StackName}-api"}},
        {"Name": "Stage", "Value": {"Ref": "StageName"}}]
    # defaults; the p99 threshold stays below the default timeout; one day at most
    assert {name: params[name]["Default"] for name in (
        "AlarmPeriodSeconds", "AlarmEvaluationPeriods", "ErrorsAlarmThreshold",
        "ThrottlesAlarmThreshold", "DurationP99AlarmThresholdMs", "Api5xxAlarmThreshold")} \
        == {"AlarmPeriodSeconds": 60, "AlarmEvaluationPeriods": 1, "ErrorsAlarmThreshold": 1,
            "ThrottlesAlarmThreshold": 1, "DurationP99AlarmThresholdMs": 10000,
            "Api5xxAlarmThreshold": 1}
    assert params["DurationP99AlarmThresholdMs"]["Default"] < params["Timeout"]["Default"] * 1000
    assert params["DurationP99AlarmThresholdMs"]["MaxValue"] <= params["Timeout"]["MaxValue"] * 1000
    assert max(params["AlarmPeriodSeconds"]["AllowedValues"]) \
        * params["AlarmEvaluationPeriods"]["MaxValue"] <= 86400
    assert all(v % 60 == 0 for v in params["AlarmPeriodSeconds"]["AllowedValues"])
    names = body["Outputs"]["AlarmNames"]["Value"]["Fn::Sub"].split(",")
    assert names == [f"${{AWS::StackName}}-{suffix}" for suffix in ALARMS.values()]


def test_the_retained_artifacts_parameter() -> None:
    body = template()
    spec = body["Parameters"]["RetainedArtifactArns"]
    assert (spec["Type"], spec["Default"]) == ("CommaDelimitedList", "")
    assert not {"PreviousModelKey", "PreviousPreproKey"} & set(body["Parameters"])


def test_the_deployed_stack_outputs_its_alarms_and_alias(aws: LocalAws) -> None:
    deployed = deploy_stack(aws.endpoint_url, "tdv-alarms", STACK)
    outputs = deployed.outputs
    names = outputs["AlarmNames"].split(",")
    assert names == [f"{STACK}-{suffix}" for suffix in ALARMS.values()]
    assert outputs["LiveAlias"] == "live"
    cw = deployed.session.client("cloudwatch", endpoint_url=aws.endpoint_url)
    alarms = cw.describe_alarms(AlarmNames=names)["MetricAlarms"]
    if "fix_alarms" not in FIXES:  # moto's CloudFormation skips AWS::CloudWatch::Alarm
        assert alarms == []
        return
    by_name = {a["AlarmName"]: a for a in alarms}
    assert sorted(by_name) == sorted(names)
    errors = by_name[f"{STACK}-live-errors"]
    assert {d["Name"]: d["Value"] for d in errors["Dimensions"]} == {
        "FunctionName": STACK, "Resource": f"{STACK}:live"}
    assert (errors["Period"], errors["EvaluationPeriods"], errors["Threshold"]) == (60, 1, 1.0)
    assert by_name[f"{STACK}-live-duration-p99"]["ExtendedStatistic"] == "p99"
