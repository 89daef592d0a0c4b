"""``tdv_airflow.local.fix_layer_ref``: ``Ref`` to a Lambda layer version is its ARN.

Each test runs the same stack on moto as it is and on moto with only this fix: the first
shows what moto lacks (when it stops failing, moto has caught up and the fix can go),
the second what AWS does.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from tests.local.conftest import Moto

BUCKET = "tdv-fix-layer-ref"
LAYER_ARN_RE = re.compile(r"^arn:aws:lambda:us-east-1:123456789012:layer:[A-Za-z0-9_-]+:1$")
#: A function that lists a layer version, and an output that refers to it.
TEMPLATE = {
    "Parameters": {"Description": {"Type": "String", "Default": "one"}},
    "Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}}},
        "Layer": {"Type": "AWS::Lambda::LayerVersion", "Properties": {
            "LayerName": "tdv-fix-layer", "CompatibleRuntimes": ["python3.11"],
            "Content": {"S3Bucket": BUCKET, "S3Key": "layer.zip"}}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.11", "Handler": "app.handler",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Code": {"S3Bucket": BUCKET, "S3Key": "code.zip"},
            "Layers": [{"Ref": "Layer"}], "Description": {"Ref": "Description"}}},
    },
    "Outputs": {"LayerArn": {"Value": {"Ref": "Layer"}}},
}


def zipped(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, text)
    return buf.getvalue()


def create(moto: Moto, stack_name: str) -> dict[str, Any]:
    """Create the stack; its description."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="layer.zip", Body=zipped("python/extra.py", "X = 1\n"))
    s3.put_object(Bucket=BUCKET, Key="code.zip",
                  Body=zipped("app.py", "def handler(event, context):\n    return 1\n"))
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(TEMPLATE),
                     Capabilities=["CAPABILITY_IAM"])
    return dict(cfn.describe_stacks(StackName=stack_name)["Stacks"][0])


def update(moto: Moto, stack_name: str, description: str) -> None:
    moto.client("cloudformation").update_stack(
        StackName=stack_name, TemplateBody=json.dumps(TEMPLATE),
        Capabilities=["CAPABILITY_IAM"],
        Parameters=[{"ParameterKey": "Description", "ParameterValue": description}])


def function_name(moto: Moto, stack_name: str) -> str:
    resources = moto.client("cloudformation").describe_stack_resources(
        StackName=stack_name)["StackResources"]
    return str(next(r["PhysicalResourceId"] for r in resources
                    if r["ResourceType"] == "AWS::Lambda::Function"))


def test_moto_alone_refs_a_layer_version_as_a_python_object(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(())
    stack = create(moto, "tdv-no-fix")
    output = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["LayerArn"]
    assert not LAYER_ARN_RE.match(output) and "LayerVersion object" in output
    with pytest.raises(Exception):  # noqa: B017 - moto answers a 500 page, not an AWS error
        update(moto, "tdv-no-fix", "two")


def test_with_the_fix_ref_is_the_arn_and_the_function_updates(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(("fix_layer_ref",))
    stack = create(moto, "tdv-fix")
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    arn = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["LayerArn"]
    assert LAYER_ARN_RE.match(arn), arn
    lambda_ = moto.client("lambda")
    layer, _, version = arn.rpartition(":")
    assert lambda_.get_layer_version(LayerName=layer, VersionNumber=int(version))[
        "LayerVersionArn"] == arn
    update(moto, "tdv-fix", "two")
    cfn = moto.client("cloudformation")
    assert cfn.describe_stacks(StackName="tdv-fix")["Stacks"][0]["StackStatus"] \
        == "UPDATE_COMPLETE"
    config = lambda_.get_function_configuration(FunctionName=function_name(moto, "tdv-fix"))
    assert config["Description"] == "two"
