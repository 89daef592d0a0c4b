"""``tdv_airflow.local.fix_update_refs``: an update reaches a resource that names a changed
parameter only inside ``Fn::Sub`` or through a condition.

The same updates run on moto as it is and on moto with only this fix: the first shows
what moto lacks (when it stops failing, moto has caught up and the fix can go), the
second what AWS does.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tdv_airflow.local.fix_update_refs import names_used
from tests.local.conftest import Moto

#: Two SSM parameters: one names Key inside Fn::Sub, one picks its value by a condition
#: on Size; neither has a Ref to a parameter in its own text.
TEMPLATE = json.dumps({
    "Parameters": {"Key": {"Type": "String"}, "Size": {"Type": "String"}},
    "Conditions": {"IsBig": {"Fn::Equals": [{"Ref": "Size"}, "big"]}},
    "Resources": {
        "BySub": {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": "tdv-by-sub", "Type": "String",
            "Value": {"Fn::Sub": "s3://bucket/${Key}"}}},
        "ByCondition": {"Type": "AWS::SSM::Parameter", "Properties": {
            "Name": "tdv-by-condition", "Type": "String",
            "Value": {"Fn::If": ["IsBig", "big", "small"]}}},
    },
})


def values_after_update(moto: Moto, prefix: str) -> tuple[str, str]:
    cfn, ssm = moto.client("cloudformation"), moto.client("ssm")
    stack = f"{prefix}-refs"
    body = TEMPLATE.replace("tdv-by-", f"{prefix}-by-")
    for call, key, size in ((cfn.create_stack, "one.pkl", "small"),
                            (cfn.update_stack, "two.pkl", "big")):
        call(StackName=stack, TemplateBody=body,
             Parameters=[{"ParameterKey": "Key", "ParameterValue": key},
                         {"ParameterKey": "Size", "ParameterValue": size}])
    return (ssm.get_parameter(Name=f"{prefix}-by-sub")["Parameter"]["Value"],
            ssm.get_parameter(Name=f"{prefix}-by-condition")["Parameter"]["Value"])


def test_moto_alone_leaves_both_resources_as_they_were(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    assert values_after_update(moto_with(()), "nofix") == ("s3://bucket/one.pkl", "small")


def test_with_the_fix_the_update_reaches_both(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    assert values_after_update(moto_with(("fix_update_refs",)), "fix") \
        == ("s3://bucket/two.pkl", "big")


@pytest.mark.parametrize("node,names", [
    ({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/${Key}/${!Literal}"},
     {"AWS::Partition", "Bucket", "Key"}),
    ({"Fn::Sub": ["${A}-${Fn.Arn}", {"A": {"Ref": "B"}}]}, {"A", "Fn", "B"}),
    ({"Fn::If": ["Both", "x", {"Ref": "C"}]}, {"P", "Q", "C"}),
    ({"Condition": "Loop"}, {"L"}),
])
def test_names_used(node: object, names: set[str]) -> None:
    conditions = {"Both": {"Fn::And": [{"Condition": "HasP"}, {"Fn::Equals": [
                      {"Ref": "Q"}, "y"]}]},
                  "HasP": {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]},
                  "Loop": {"Fn::Or": [{"Condition": "Loop"}, {"Fn::Equals": [
                      {"Ref": "L"}, "1"]}]}}
    assert names_used(node, conditions) == names
