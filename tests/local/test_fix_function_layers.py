"""``tdv_airflow.local.fix_function_layers``: a function is created with its layers, and a
stack update that changes a layer version replaces it, as on AWS.

Each test runs the same stack on moto with only ``fix_layer_ref`` (without it moto cannot
``Ref`` a layer at all), ``fix_no_value`` and ``fix_update_refs`` (as the shipped template
is served: a ``Ref`` that resolves to nothing leaves a list; a changed condition updates
the function), and with this fix too: the first shows what moto
lacks (when it stops failing, moto has caught up and the fix can go), the second what AWS
does.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.local.conftest import Moto

BUCKET = "tdv-fix-function-layers"
STACK = "tdv-layers"
#: A function with a layer whose content is a parameter, a second one kept on replacement
#: (``UpdateReplacePolicy: Retain``), and a third one present under a condition.
TEMPLATE: dict[str, Any] = {
    "Parameters": {"LayerKey": {"Type": "String"},
                   "ExtraKey": {"Type": "String", "Default": ""}},
    "Conditions": {"HasExtra": {"Fn::Not": [{"Fn::Equals": [{"Ref": "ExtraKey"}, ""]}]}},
    "Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}}},
        "Layer": {"Type": "AWS::Lambda::LayerVersion", "Properties": {
            "LayerName": "tdv-deps", "CompatibleRuntimes": ["python3.11"],
            "Content": {"S3Bucket": BUCKET, "S3Key": {"Ref": "LayerKey"}}}},
        "Kept": {"Type": "AWS::Lambda::LayerVersion", "UpdateReplacePolicy": "Retain",
                 "Properties": {"LayerName": "tdv-kept",
                                "Content": {"S3Bucket": BUCKET, "S3Key": {"Ref": "LayerKey"}}}},
        "Extra": {"Type": "AWS::Lambda::LayerVersion", "Condition": "HasExtra",
                  "Properties": {"LayerName": "tdv-extra",
                                 "Content": {"S3Bucket": BUCKET, "S3Key": {"Ref": "ExtraKey"}}}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.11", "Handler": "app.handler",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Code": {"S3Bucket": BUCKET, "S3Key": "code.zip"},
            "Layers": {"Fn::If": ["HasExtra", [{"Ref": "Layer"}, {"Ref": "Extra"}],
                                  [{"Ref": "Layer"}]]},
            "Environment": {"Variables": {"LAYER_KEY": {"Ref": "LayerKey"}}}}},
    },
    "Outputs": {"LayerArn": {"Value": {"Ref": "Layer"}},
                "KeptArn": {"Value": {"Ref": "Kept"}},
                "FunctionName": {"Value": {"Ref": "Function"}}},
}
#: The fixes the tests need besides this one.
BASE = ("fix_layer_ref", "fix_no_value", "fix_update_refs")
ZIPS = {"a.zip": "V = 'a'\n", "b.zip": "V = 'b'\n", "extra.zip": "E = 1\n"}


def zipped(name: str, text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, text)
    return buf.getvalue()


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def put_artifacts(moto: Moto) -> dict[str, bytes]:
    """The code and the layer zips in the bucket; the zips' bytes by key."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="code.zip",
                  Body=zipped("app.py", "def handler(event, context):\n    return 1\n"))
    bodies = {key: zipped("python/probe.py", text) for key, text in ZIPS.items()}
    for key, body in bodies.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return bodies


def deploy(moto: Moto, layer_key: str, extra_key: str = "", create: bool = False,
           template: dict[str, Any] = TEMPLATE) -> dict[str, str]:
    """Create or update the stack; its outputs."""
    cfn = moto.client("cloudformation")
    action = cfn.create_stack if create else cfn.update_stack
    action(StackName=STACK, TemplateBody=json.dumps(template), Capabilities=["CAPABILITY_IAM"],
           Parameters=[{"ParameterKey": "LayerKey", "ParameterValue": layer_key},
                       {"ParameterKey": "ExtraKey", "ParameterValue": extra_key}])
    stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    assert stack["StackStatus"] in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}, stack
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def function_name(moto: Moto) -> str:
    stack = moto.client("cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    return next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "FunctionName")


def layers_of(moto: Moto, qualifier: str | None = None) -> list[str]:
    """The layer ARNs of the function's ``$LATEST`` (or of a version)."""
    kw = {"Qualifier": qualifier} if qualifier else {}
    config = moto.client("lambda").get_function_configuration(
        FunctionName=function_name(moto), **kw)
    return [layer["Arn"] for layer in config.get("Layers") or []]


def versions_of(moto: Moto, arn: str) -> list[int]:
    """The version numbers the layer of ``arn`` still has."""
    name = arn.split(":")[6]  # arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION
    listed = moto.client("lambda").list_layer_versions(LayerName=name)
    return sorted(v["Version"] for v in listed["LayerVersions"])


def content_sha(moto: Moto, arn: str) -> str:
    layer, _, number = arn.rpartition(":")
    version = moto.client("lambda").get_layer_version(LayerName=layer,
                                                      VersionNumber=int(number))
    return str(version["Content"]["CodeSha256"])


def test_moto_alone_creates_no_layers_and_loses_a_changed_one(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(BASE)
    put_artifacts(moto)
    first = deploy(moto, "a.zip", create=True)["LayerArn"]
    assert layers_of(moto) == []  # the template lists one
    deploy(moto, "b.zip")
    assert layers_of(moto) == []  # the changed layer's Ref is nothing: it is dropped
    assert versions_of(moto, first) == [1]  # and no new version replaces it
    deploy(moto, "a.zip")
    assert layers_of(moto) == []  # nor at any later update
    with pytest.raises(ClientError, match=r"\(500\)"):  # not implemented
        moto.client("lambda").get_layer_version_by_arn(Arn=first)


def test_with_the_fix_a_changed_layer_is_replaced_and_versions_keep_theirs(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with((*BASE, "fix_function_layers"))
    bodies = put_artifacts(moto)
    lambda_ = moto.client("lambda")
    created = deploy(moto, "a.zip", create=True)
    first, kept = created["LayerArn"], created["KeptArn"]
    assert layers_of(moto) == [first] and first.endswith(":1")
    assert lambda_.publish_version(FunctionName=function_name(moto))["Version"] == "1"

    updated = deploy(moto, "b.zip")
    second = updated["LayerArn"]
    assert second != first and second.rsplit(":", 1)[0] == first.rsplit(":", 1)[0]
    assert layers_of(moto) == [second]
    assert content_sha(moto, second) == b64_sha256(bodies["b.zip"])
    assert versions_of(moto, first) == [2]  # UpdateReplacePolicy Delete (the default)
    assert versions_of(moto, kept) == [1, 2]  # UpdateReplacePolicy Retain
    assert updated["KeptArn"].endswith(":2")
    assert layers_of(moto, "1") == [first]  # a published version keeps its layer
    assert lambda_.get_layer_version_by_arn(Arn=second)["LayerVersionArn"] == second
    with pytest.raises(lambda_.exceptions.ResourceNotFoundException):
        lambda_.get_layer_version_by_arn(Arn=first)

    third = deploy(moto, "a.zip")["LayerArn"]
    assert third.endswith(":3") and layers_of(moto) == [third]
    assert content_sha(moto, third) == b64_sha256(bodies["a.zip"])

    # A template change that resolves to the same properties replaces nothing.
    template = copy.deepcopy(TEMPLATE)
    template["Resources"]["Layer"]["Metadata"] = {"note": "same layer"}
    assert deploy(moto, "a.zip", template=template)["LayerArn"] == third


def test_with_the_fix_a_layer_whose_condition_turns_false_is_deleted(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with((*BASE, "fix_function_layers"))
    put_artifacts(moto)
    deploy(moto, "a.zip", create=True)
    deploy(moto, "a.zip", extra_key="extra.zip")
    layer, extra = layers_of(moto)
    assert versions_of(moto, extra) == [1]
    deploy(moto, "a.zip", extra_key="")
    assert layers_of(moto) == [layer]
    assert versions_of(moto, extra) == []  # DeletionPolicy Delete (the default)
