"""``tdv_airflow.local.fix_lambda_versions``: published versions are immutable snapshots,
numbered once, published only on change, guarded by ``CodeSha256`` and ``RevisionId``.

A stack holding one ``AWS::Lambda::Function`` whose environment and code come from
parameters, as the shipped template's: each test runs on moto as it is (what moto lacks:
when such a test fails, moto has caught up) or on moto with only this fix (what AWS does).
The stack helpers are also used by the tests of the other Lambda fixes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from tests.local.conftest import Moto

BUCKET = "tdv-fix-lambda-versions"
#: One function; ``ModelKey`` lands in its environment, ``CodeKey`` picks its code.
TEMPLATE = {
    "Parameters": {"ModelKey": {"Type": "String", "Default": "models/a.pkl"},
                   "CodeKey": {"Type": "String", "Default": "code-a.zip"}},
    "Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}}},
        "Function": {"Type": "AWS::Lambda::Function", "Properties": {
            "Runtime": "python3.11", "Handler": "app.handler",
            "Role": {"Fn::GetAtt": ["Role", "Arn"]},
            "Code": {"S3Bucket": BUCKET, "S3Key": {"Ref": "CodeKey"}},
            "Environment": {"Variables": {"TDV_MODEL_KEY": {"Ref": "ModelKey"}}}}},
    },
    "Outputs": {"FunctionName": {"Value": {"Ref": "Function"}}},
}


def zipped(answer: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app.py", f"def handler(event, context):\n    return {answer}\n")
    return buf.getvalue()


def deploy(moto: Moto, stack_name: str, model_key: str = "models/a.pkl",
           code_key: str = "code-a.zip") -> str:
    """Create the stack, or update it when it exists; the function's name."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    for answer, key in enumerate(("code-a.zip", "code-b.zip")):
        s3.put_object(Bucket=BUCKET, Key=key, Body=zipped(answer))
    cfn = moto.client("cloudformation")
    request: dict[str, Any] = {
        "StackName": stack_name, "TemplateBody": json.dumps(TEMPLATE),
        "Capabilities": ["CAPABILITY_IAM"],
        "Parameters": [{"ParameterKey": "ModelKey", "ParameterValue": model_key},
                       {"ParameterKey": "CodeKey", "ParameterValue": code_key}]}
    if any(s["StackName"] == stack_name for s in cfn.describe_stacks()["Stacks"]):
        cfn.update_stack(**request)
    else:
        cfn.create_stack(**request)
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    assert stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), stack
    return str({o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["FunctionName"])


def client_error(call: Callable[[], Any]) -> tuple[str, str]:
    """The error code and message ``call`` fails with."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as failed:
        call()
    error = failed.value.response["Error"]
    return str(error["Code"]), str(error["Message"])


@pytest.fixture(scope="module")
def plain(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(())


@pytest.fixture(scope="module")
def fixed(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(("fix_lambda_versions",))


def test_moto_alone_shares_code_reuses_numbers_and_ignores_the_guards(plain: Moto) -> None:
    name = deploy(plain, "tdv-plain")
    lam = plain.client("lambda")
    lam.publish_version(FunctionName=name)
    assert "RevisionId" not in lam.get_function_configuration(FunctionName=name)
    deploy(plain, "tdv-plain", "models/b.pkl", "code-b.zip")
    # version 1 now points at version 2's code
    assert lam.get_function(FunctionName=name, Qualifier="1")["Code"]["Location"].endswith(
        "code-b.zip")
    assert lam.publish_version(FunctionName=name, CodeSha256="0" * 44)["Version"] == "2"
    lam.delete_function(FunctionName=name, Qualifier="1")
    deploy(plain, "tdv-plain", "models/c.pkl", "code-b.zip")
    assert lam.publish_version(FunctionName=name)["Version"] == "2"  # a second "2"
    versions = [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)[
        "Versions"]]
    assert versions == ["$LATEST", "2", "2"]


def test_moto_alone_publishes_twice_after_an_update_before_the_first_publish(
        plain: Moto) -> None:
    name = deploy(plain, "tdv-plain-twice")
    deploy(plain, "tdv-plain-twice", "models/b.pkl")
    lam = plain.client("lambda")
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    assert lam.publish_version(FunctionName=name)["Version"] == "2"  # nothing changed


def test_a_stack_update_keeps_versions_aliases_and_each_versions_own_state(
        fixed: Moto) -> None:
    """(a) of issue 12: an update that changes the environment and the code."""
    name = deploy(fixed, "tdv-keep")
    lam = fixed.client("lambda")
    first = lam.publish_version(FunctionName=name, Description="first")
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=first["Version"])
    deploy(fixed, "tdv-keep", "models/b.pkl", "code-b.zip")

    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == "1"
    one = lam.get_function(FunctionName=name, Qualifier="1")
    assert one["Configuration"]["Environment"] == {
        "Variables": {"TDV_MODEL_KEY": "models/a.pkl"}}
    assert one["Configuration"]["CodeSha256"] == first["CodeSha256"]
    assert one["Configuration"]["Description"] == "first"
    assert one["Code"]["Location"].endswith("code-a.zip")
    latest = lam.get_function(FunctionName=name)
    assert latest["Configuration"]["Environment"] == {
        "Variables": {"TDV_MODEL_KEY": "models/b.pkl"}}
    assert latest["Configuration"]["CodeSha256"] != first["CodeSha256"]
    assert latest["Code"]["Location"].endswith("code-b.zip")


def test_publish_after_an_update_publishes_and_an_unchanged_function_returns_the_last(
        fixed: Moto) -> None:
    """(b) of issue 12: a new version only on change; the guards refuse a stale caller."""
    name = deploy(fixed, "tdv-publish")
    deploy(fixed, "tdv-publish", "models/b.pkl")  # changed before the first publish
    lam = fixed.client("lambda")
    assert lam.publish_version(FunctionName=name, Description="one")["Version"] == "1"
    again = lam.publish_version(FunctionName=name, Description="two")
    assert (again["Version"], again["Description"]) == ("1", "one")

    before = lam.get_function_configuration(FunctionName=name)
    deploy(fixed, "tdv-publish", "models/c.pkl")
    latest = lam.get_function_configuration(FunctionName=name)
    assert latest["RevisionId"] != before["RevisionId"]
    assert client_error(lambda: lam.publish_version(
        FunctionName=name, RevisionId=before["RevisionId"]))[0] == "PreconditionFailedException"
    code, message = client_error(lambda: lam.publish_version(
        FunctionName=name, CodeSha256="0" * 44))
    assert code == "InvalidParameterValueException"
    assert f"is different from current CodeSHA256 in $LATEST ({latest['CodeSha256']})" \
        in message
    published = lam.publish_version(FunctionName=name, CodeSha256=latest["CodeSha256"],
                                    RevisionId=latest["RevisionId"])
    assert published["Version"] == "2"
    assert published["Environment"] == {"Variables": {"TDV_MODEL_KEY": "models/c.pkl"}}


def test_a_version_number_is_never_handed_out_twice(fixed: Moto) -> None:
    name = deploy(fixed, "tdv-numbers")
    lam = fixed.client("lambda")
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    deploy(fixed, "tdv-numbers", "models/b.pkl")
    assert lam.publish_version(FunctionName=name)["Version"] == "2"
    lam.delete_function(FunctionName=name, Qualifier="2")
    deploy(fixed, "tdv-numbers", "models/c.pkl")
    assert lam.publish_version(FunctionName=name)["Version"] == "3"
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "3"]


def test_qualified_reads_and_the_version_list_show_each_versions_own_configuration(
        fixed: Moto) -> None:
    """(e) of issue 12."""
    name = deploy(fixed, "tdv-reads")
    lam = fixed.client("lambda")
    keys = {"1": "models/a.pkl", "2": "models/b.pkl"}
    lam.publish_version(FunctionName=name, Description="from a")
    deploy(fixed, "tdv-reads", keys["2"], "code-b.zip")
    lam.publish_version(FunctionName=name, Description="from b")
    deploy(fixed, "tdv-reads", "models/candidate.pkl")

    for version, key in keys.items():
        config = lam.get_function_configuration(FunctionName=name, Qualifier=version)
        assert (config["Version"], config["Environment"]["Variables"]["TDV_MODEL_KEY"]) == (
            version, key)
        assert config["FunctionArn"].endswith(f":{version}")
        got = lam.get_function(FunctionName=name, Qualifier=version)["Configuration"]
        assert got["Environment"]["Variables"]["TDV_MODEL_KEY"] == key
    listed = {v["Version"]: v for v in lam.list_versions_by_function(FunctionName=name)[
        "Versions"]}
    assert list(listed) == ["$LATEST", "1", "2"]
    assert [listed[v]["Description"] for v in ("1", "2")] == ["from a", "from b"]
    assert {v: listed[v]["Environment"]["Variables"]["TDV_MODEL_KEY"] for v in listed} == {
        "$LATEST": "models/candidate.pkl", **keys}
