"""``tdv_airflow.local.fix_alarms``: ``AWS::CloudWatch::Alarm`` in moto's CloudFormation.

The same stack on moto as it is (which skips the alarms: when that test fails, moto has
caught up and the fix can go) and on moto with only this fix (what AWS does: the stack
creates, updates, replaces and deletes the alarms, ``Ref`` is the name, ``GetAtt Arn`` the
ARN, ``SetAlarmState`` forces one into ``ALARM``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.local.conftest import Moto

ARN_PREFIX = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:"
#: Two alarms of the kinds the shipped template declares: a Sum of Lambda errors on the
#: alias's metrics (named by a parameter-built name, no actions) and a p99 of the duration
#: with a generated name.
TEMPLATE: dict[str, Any] = {
    "Parameters": {
        "Threshold": {"Type": "Number", "Default": 1},
        "Period": {"Type": "Number", "Default": 60},
        "Suffix": {"Type": "String", "Default": "errors"},
    },
    "Resources": {
        "Errors": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmName": {"Fn::Join": ["-", [{"Ref": "AWS::StackName"}, "live",
                                             {"Ref": "Suffix"}]]},
            "AlarmDescription": "errors of the live alias",
            "Namespace": "AWS/Lambda", "MetricName": "Errors", "Statistic": "Sum",
            "Dimensions": [{"Name": "FunctionName", "Value": "predict"},
                           {"Name": "Resource", "Value": "predict:live"}],
            "Period": {"Ref": "Period"}, "EvaluationPeriods": 1,
            "Threshold": {"Ref": "Threshold"},
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching", "ActionsEnabled": False, "AlarmActions": []}},
        "Duration": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "Namespace": "AWS/Lambda", "MetricName": "Duration", "ExtendedStatistic": "p99",
            "Dimensions": [{"Name": "FunctionName", "Value": "predict"}],
            "Period": 60, "EvaluationPeriods": 2, "Threshold": 2500,
            "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}},
    },
    "Outputs": {"ErrorsName": {"Value": {"Ref": "Errors"}},
                "ErrorsArn": {"Value": {"Fn::GetAtt": ["Errors", "Arn"]}},
                "DurationName": {"Value": {"Ref": "Duration"}}},
}


@pytest.fixture(scope="module")
def fixed(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(("fix_alarms",))


def deploy(moto: Moto, stack_name: str, template: dict[str, Any] = TEMPLATE,
           **parameters: str) -> dict[str, str]:
    """Create the stack (or update it with ``parameters``); its outputs."""
    cfn = moto.client("cloudformation")
    given = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    if parameters:
        cfn.update_stack(StackName=stack_name, TemplateBody=json.dumps(template),
                         Parameters=given)
    else:
        cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(template))
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def alarms(moto: Moto) -> dict[str, dict[str, Any]]:
    return {a["AlarmName"]: a
            for a in moto.client("cloudwatch").describe_alarms()["MetricAlarms"]}


def test_moto_alone_skips_the_alarms(moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(())
    with pytest.raises(Exception):  # noqa: B017 - moto answers a 500 page, not an AWS error
        deploy(moto, "tdv-no-fix-arn")  # GetAtt Arn of a type moto does not know
    without_arn = {**TEMPLATE, "Outputs": {"ErrorsName": {"Value": {"Ref": "Errors"}}}}
    outputs = deploy(moto, "tdv-no-fix", without_arn)
    assert outputs.get("ErrorsName") != "tdv-no-fix-live-errors"
    assert alarms(moto) == {}
    with pytest.raises(moto.client("cloudwatch").exceptions.ResourceNotFound):
        moto.client("cloudwatch").set_alarm_state(
            AlarmName="tdv-no-fix-live-errors", StateValue="ALARM", StateReason="forced")


def test_with_the_fix_the_stack_creates_the_alarms_as_declared(fixed: Moto) -> None:
    outputs = deploy(fixed, "tdv-create")
    assert outputs["ErrorsName"] == "tdv-create-live-errors"
    assert outputs["ErrorsArn"] == ARN_PREFIX + "tdv-create-live-errors"
    assert outputs["DurationName"].startswith("tdv-create-Duration-")
    found = alarms(fixed)
    errors, duration = found["tdv-create-live-errors"], found[outputs["DurationName"]]
    assert errors["AlarmArn"] == outputs["ErrorsArn"]
    assert (errors["Namespace"], errors["MetricName"], errors["Statistic"]) == (
        "AWS/Lambda", "Errors", "Sum")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": "predict"},
                                    {"Name": "Resource", "Value": "predict:live"}]
    assert (errors["Period"], errors["EvaluationPeriods"], errors["Threshold"]) == (60, 1, 1.0)
    assert errors["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert errors["TreatMissingData"] == "notBreaching"
    assert errors["AlarmDescription"] == "errors of the live alias"
    assert errors["ActionsEnabled"] is False and errors["AlarmActions"] == []
    assert duration["ExtendedStatistic"] == "p99" and "Statistic" not in duration
    assert (duration["Threshold"], duration["EvaluationPeriods"]) == (2500.0, 2)
    # a new alarm has not been evaluated yet, as on AWS
    assert {a["StateValue"] for a in found.values()} == {"INSUFFICIENT_DATA"}

    cloudwatch = fixed.client("cloudwatch")
    cloudwatch.set_alarm_state(AlarmName="tdv-create-live-errors", StateValue="ALARM",
                               StateReason="Threshold Crossed: 1 datapoint [3.0]")
    firing = cloudwatch.describe_alarms(StateValue="ALARM")["MetricAlarms"]
    assert [(a["AlarmName"], a["StateReason"]) for a in firing] == [
        ("tdv-create-live-errors", "Threshold Crossed: 1 datapoint [3.0]")]


def test_with_the_fix_an_update_changes_the_alarm_and_keeps_its_state(fixed: Moto) -> None:
    deploy(fixed, "tdv-update")
    fixed.client("cloudwatch").set_alarm_state(
        AlarmName="tdv-update-live-errors", StateValue="ALARM", StateReason="forced")
    deploy(fixed, "tdv-update", Threshold="5", Period="300")
    errors = alarms(fixed)["tdv-update-live-errors"]
    assert (errors["Threshold"], errors["Period"]) == (5.0, 300)
    assert (errors["StateValue"], errors["StateReason"]) == ("ALARM", "forced")


def test_with_the_fix_a_new_name_replaces_the_alarm(fixed: Moto) -> None:
    outputs = deploy(fixed, "tdv-rename")
    deploy(fixed, "tdv-rename", Suffix="failures")
    names = set(alarms(fixed))
    assert "tdv-rename-live-failures" in names
    assert "tdv-rename-live-errors" not in names
    assert outputs["DurationName"] in names  # a generated name stays across updates


def test_with_the_fix_deleting_the_stack_deletes_its_alarms(fixed: Moto) -> None:
    outputs = deploy(fixed, "tdv-delete")
    fixed.client("cloudformation").delete_stack(StackName="tdv-delete")
    names = set(alarms(fixed))
    assert not {"tdv-delete-live-errors", outputs["DurationName"]} & names
