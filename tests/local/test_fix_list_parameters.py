"""``tdv_airflow.local.fix_list_parameters``: a ``CommaDelimitedList`` parameter is
described as the comma-separated string it was given.

The same stack runs on moto as it is and on moto with only this fix: the first shows
what moto lacks (when it stops failing, moto has caught up and the fix can go), the
second what AWS does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tdv_airflow.local.fix_list_parameters import described
from tests.local.conftest import Moto

#: A list parameter the stack resolves (its join is an output) and a plain one.
TEMPLATE = {
    "Parameters": {"Arns": {"Type": "CommaDelimitedList", "Default": ""},
                   "Name": {"Type": "String", "Default": "x"}},
    "Conditions": {"HasArns": {"Fn::Not": [{"Fn::Equals": [
        {"Fn::Join": ["", {"Ref": "Arns"}]}, ""]}]}},
    "Resources": {"Group": {"Type": "AWS::Logs::LogGroup", "Properties": {
        "LogGroupName": {"Fn::Sub": "/tdv/${AWS::StackName}/${Name}"}}}},
    "Outputs": {"Joined": {"Value": {"Fn::Join": ["|", {"Ref": "Arns"}]}},
                "Has": {"Value": {"Fn::If": ["HasArns", "yes", "no"]}}},
}
VALUES = ["arn:aws:s3:::b/m1.pkl", "arn:aws:s3:::b/m2.pkl"]


def roundtrip(moto: Moto, stack_name: str) -> list[tuple[str, dict[str, str]]]:
    """Create with two ARNs, update (reading the list back, as a retry does) and then
    with none: each time what DescribeStacks shows for the parameters and outputs."""
    cfn = moto.client("cloudformation")
    body = json.dumps(TEMPLATE)
    seen = []

    def describe() -> tuple[str, dict[str, str]]:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        value = next(p["ParameterValue"] for p in stack["Parameters"]
                     if p["ParameterKey"] == "Arns")
        return value, {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}

    cfn.create_stack(StackName=stack_name, TemplateBody=body, Parameters=[
        {"ParameterKey": "Arns", "ParameterValue": ",".join(VALUES)}])
    seen.append(describe())
    cfn.update_stack(StackName=stack_name, TemplateBody=body, Parameters=[
        {"ParameterKey": "Arns", "ParameterValue": seen[-1][0]},
        {"ParameterKey": "Name", "ParameterValue": "y"}])
    seen.append(describe())
    cfn.update_stack(StackName=stack_name, TemplateBody=body, Parameters=[
        {"ParameterKey": "Arns", "ParameterValue": ""},
        {"ParameterKey": "Name", "ParameterValue": "z"}])
    seen.append(describe())
    return seen


def test_plain_moto_describes_a_python_repr(moto_with: Callable[[tuple[str, ...]], Moto]
                                            ) -> None:
    seen = roundtrip(moto_with(()), "tdv-plain")
    assert seen[0] == (repr(VALUES), {"Joined": "|".join(VALUES), "Has": "yes"})
    # read back and sent again, the repr is split into bogus elements
    bogus = repr(VALUES).split(",")
    assert seen[1] == (repr(bogus), {"Joined": "|".join(bogus), "Has": "yes"})
    assert seen[2][0] == "['']"


def test_with_the_fix_the_value_is_what_was_given(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    seen = roundtrip(moto_with(("fix_list_parameters",)), "tdv-fixed")
    joined = {"Joined": "|".join(VALUES), "Has": "yes"}
    assert seen == [(",".join(VALUES), joined), (",".join(VALUES), joined),
                    ("", {"Joined": "", "Has": "no"})]


@pytest.mark.parametrize("value,shown", [
    (["a", "b"], "a,b"), ([""], ""), ([], ""), ("text", "text"), (5, 5), ([1, 2], "1,2"),
])
def test_described(value: Any, shown: Any) -> None:
    assert described(value) == shown
