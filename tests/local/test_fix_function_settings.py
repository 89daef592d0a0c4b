"""``tdv_airflow.local.fix_function_settings``: a function's ``EphemeralStorage`` and
``SnapStart`` reach Lambda through CloudFormation, on create and on update.

The same stack on moto as it is (what moto lacks: when that test fails, moto has caught
up) and on moto with only this fix (what AWS does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.local.conftest import Moto
from tests.local.test_fix_layer_ref import zipped

BUCKET = "tdv-fix-function-settings"


def template(size: int, apply_on: str) -> str:
    return json.dumps({"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.12", "Handler": "app.handler",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Code": {"S3Bucket": BUCKET, "S3Key": "code.zip"},
            "EphemeralStorage": {"Size": size}, "SnapStart": {"ApplyOn": apply_on}}}},
        "Outputs": {"Name": {"Value": {"Ref": "Function"}}}})


def deploy(moto: Moto, stack_name: str, size: int, apply_on: str) -> dict[str, Any]:
    """Create (or update) the stack; the function's configuration."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    code = zipped("app.py", "def handler(event, context):\n    return 1\n")
    s3.put_object(Bucket=BUCKET, Key="code.zip", Body=code)
    cfn = moto.client("cloudformation")
    request = {"StackName": stack_name, "TemplateBody": template(size, apply_on),
               "Capabilities": ["CAPABILITY_IAM"]}
    if any(s["StackName"] == stack_name for s in cfn.describe_stacks()["Stacks"]):
        cfn.update_stack(**request)
    else:
        cfn.create_stack(**request)
    outputs = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["Outputs"]
    name = outputs[0]["OutputValue"]
    return dict(moto.client("lambda").get_function_configuration(FunctionName=name))


def test_moto_alone_drops_both(moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    config = deploy(moto_with(()), "tdv-settings-plain", 2048, "PublishedVersions")
    assert config["EphemeralStorage"] == {"Size": 512}
    assert config["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}  # always


def test_both_reach_the_function_and_follow_an_update(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(("fix_function_settings",))
    config = deploy(moto, "tdv-settings", 2048, "None")
    assert config["EphemeralStorage"] == {"Size": 2048}
    assert config["SnapStart"] == {"ApplyOn": "None", "OptimizationStatus": "Off"}
    config = deploy(moto, "tdv-settings", 512, "PublishedVersions")
    assert config["EphemeralStorage"] == {"Size": 512}
    assert config["SnapStart"] == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "Off"}
    published = moto.client("lambda").publish_version(FunctionName=config["FunctionName"])
    assert published["SnapStart"] == {"ApplyOn": "PublishedVersions",
                                      "OptimizationStatus": "On"}
