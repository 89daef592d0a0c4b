"""``tdv_airflow.local.fix_architectures``: a function's ``Architectures`` and a layer's
``CompatibleArchitectures`` reach Lambda through CloudFormation.

The same stack runs on moto as it is and on moto with only this fix: the first shows
what moto lacks (when it stops failing, moto has caught up and the fix can go), the
second what AWS does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.local.conftest import Moto
from tests.local.test_fix_layer_ref import zipped

BUCKET = "tdv-fix-architectures"


def template(architecture: str) -> str:
    return json.dumps({"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}}},
        "Layer": {"Type": "AWS::Lambda::LayerVersion", "Properties": {
            "LayerName": "tdv-arch-layer", "CompatibleRuntimes": ["python3.11"],
            "CompatibleArchitectures": [architecture],
            "Content": {"S3Bucket": BUCKET, "S3Key": "layer.zip"}}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": "tdv-arch-fn", "Runtime": "python3.11", "Handler": "app.handler",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]}, "Architectures": [architecture],
            "Code": {"S3Bucket": BUCKET, "S3Key": "code.zip"}}},
    }})


def architectures(moto: Moto, architecture: str, *, update_to: str | None = None
                  ) -> tuple[list[str], list[str]]:
    """Deploy (then update) the stack; the function's Architectures and the latest
    layer version's CompatibleArchitectures (each test runs on its own server)."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="layer.zip", Body=zipped("python/x.py", "X = 1\n"))
    s3.put_object(Bucket=BUCKET, Key="code.zip", Body=zipped("app.py", "def handler(e, c):\n"
                                                                        "    return 1\n"))
    cfn, lambda_ = moto.client("cloudformation"), moto.client("lambda")
    cfn.create_stack(StackName="tdv-arch", TemplateBody=template(architecture),
                     Capabilities=["CAPABILITY_IAM"])
    if update_to:
        cfn.update_stack(StackName="tdv-arch", TemplateBody=template(update_to),
                         Capabilities=["CAPABILITY_IAM"])
    function: dict[str, Any] = lambda_.get_function_configuration(FunctionName="tdv-arch-fn")
    layer = lambda_.list_layers()["Layers"][0]["LatestMatchingVersion"]
    return function["Architectures"], layer.get("CompatibleArchitectures", [])


def test_moto_alone_makes_every_function_x86(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    assert architectures(moto_with(()), "arm64") == (["x86_64"], [])


def test_with_the_fix_arm64_reaches_the_function_and_the_layer(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    assert architectures(moto_with(("fix_architectures",)), "arm64") == (["arm64"], ["arm64"])


def test_with_the_fix_an_update_changes_the_function_s_architecture(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    """(A changed layer version is a replacement on AWS, which moto does not model: only
    the function is compared here.)"""
    function, _ = architectures(moto_with(("fix_architectures",)), "x86_64", update_to="arm64")
    assert function == ["arm64"]
