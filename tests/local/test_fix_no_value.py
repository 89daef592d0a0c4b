"""``tdv_airflow.local.fix_no_value``: ``AWS::NoValue`` in a list removes the element.

The same stack runs on moto as it is and on moto with only this fix: the first shows
what moto lacks (when it stops failing, moto has caught up and the fix can go), the
second what AWS does.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.local.conftest import Moto

#: An SSM StringList parameter whose elements are optional.
TEMPLATE = json.dumps({
    "Parameters": {"Extra": {"Type": "String", "Default": ""}},
    "Conditions": {"HasExtra": {"Fn::Not": [{"Fn::Equals": [{"Ref": "Extra"}, ""]}]}},
    "Resources": {"List": {"Type": "AWS::SSM::Parameter", "Properties": {
        "Name": "tdv-no-value", "Type": "StringList",
        "Value": {"Fn::Join": [",", [
            "first",
            {"Fn::If": ["HasExtra", {"Ref": "Extra"}, {"Ref": "AWS::NoValue"}]},
            {"Ref": "AWS::NoValue"},
            "last"]]}}}},
})


def listed(moto: Moto, extra: str) -> str:
    cfn, ssm = moto.client("cloudformation"), moto.client("ssm")
    stack = f"tdv-no-value-{len(extra)}"
    cfn.create_stack(StackName=stack, TemplateBody=TEMPLATE.replace(
        "tdv-no-value", stack), Parameters=[{"ParameterKey": "Extra", "ParameterValue": extra}])
    return str(ssm.get_parameter(Name=stack)["Parameter"]["Value"])


def test_moto_alone_keeps_an_element_for_no_value(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(())
    assert listed(moto, "") != "first,last"
    assert listed(moto, "x") != "first,x,last"


def test_with_the_fix_no_value_removes_the_element(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(("fix_no_value",))
    assert listed(moto, "") == "first,last"
    assert listed(moto, "x") == "first,x,last"
