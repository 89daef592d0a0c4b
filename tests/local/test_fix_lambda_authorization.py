"""``tdv_airflow.local.fix_lambda_authorization``: Lambda requests are authorised by their
signature, the ARN they address and AWS's action names, when moto enforces IAM.

The same calls run on an enforcing moto as it is and on one with only this fix: the first
shows what moto lacks (when it stops failing, moto has caught up and the fix can go), the
second what AWS does.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.local.fix_lambda_authorization import lambda_resource, request_context
from testkit.iam_moto import ACCOUNT, IamMoto, start_enforcing
from testkit.models import access_denied

FUNCTION = "tdv-auth"
OTHER = "not-ours"
ARN = f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:"
#: A policy scoped the way the published one is: our function, its versions and alias.
SCOPED = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["lambda:GetFunctionConfiguration", "lambda:GetAlias",
                                   "lambda:ListVersionsByFunction", "lambda:PublishVersion"],
     "Resource": [f"{ARN}tdv-*"]},
    {"Effect": "Allow", "Action": ["lambda:InvokeFunction", "lambda:DeleteFunction"],
     "Resource": [f"{ARN}tdv-*:*"]},
    {"Effect": "Allow", "Action": ["lambda:AddPermission"], "Resource": [f"{ARN}tdv-*:live"],
     "Condition": {"StringEquals": {"lambda:Principal": "apigateway.amazonaws.com"}}},
]}


def handler_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", "def handler(event, context):\n    return {'ok': 1}\n")
    return buf.getvalue()


def start(tmp: Path, fixes: tuple[str, ...]) -> IamMoto:
    """An enforcing moto with ``fixes``, two functions with a version each and an alias."""
    moto = start_enforcing(tmp / "moto.log", fixes=fixes)
    role = moto.client("iam").create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {
            "Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
    lam = moto.client("lambda")
    for name in (FUNCTION, OTHER):
        lam.create_function(FunctionName=name, Runtime="python3.11", Role=role,
                            Handler="h.handler", Code={"ZipFile": handler_zip()})
        lam.publish_version(FunctionName=name)
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    return moto


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamMoto]:
    moto = start(tmp_path_factory.mktemp("plain"), ())
    try:
        yield moto
    finally:
        moto.aws.stop()


@pytest.fixture(scope="module")
def fixed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamMoto]:
    moto = start(tmp_path_factory.mktemp("fixed"), ("fix_lambda_authorization",))
    try:
        yield moto
    finally:
        moto.aws.stop()


def outcome(call: Any, **kwargs: Any) -> str:
    """``"ok"``, ``"denied"`` (AccessDenied), ``"SignatureDoesNotMatch"`` or the error
    code of one call (moto answers a Lambda client in XML: the code is then in the text)."""
    from botocore.exceptions import ClientError

    try:
        call(**kwargs)
    except ClientError as exc:
        if "SignatureDoesNotMatch" in str(exc):
            return "SignatureDoesNotMatch"
        if access_denied(exc) and "AccessDenied" in str(exc):
            return "denied"
        return str(exc.response["Error"]["Code"])
    return "ok"


def calls(lam: Any, name: str) -> dict[str, str]:
    """Every call the rollout makes, on function ``name``."""
    return {
        "get configuration": outcome(lam.get_function_configuration, FunctionName=name,
                                     Qualifier="1"),
        "get alias": outcome(lam.get_alias, FunctionName=name, Name="live"),
        "list versions": outcome(lam.list_versions_by_function, FunctionName=name),
        "publish": outcome(lam.publish_version, FunctionName=name),
        "invoke version": outcome(lam.invoke, FunctionName=name, Qualifier="1",
                                  Payload=b"{}"),
        "invoke $LATEST": outcome(lam.invoke, FunctionName=name, Payload=b"{}"),
        "permission for the API": outcome(
            lam.add_permission, FunctionName=name, Qualifier="live", StatementId="api",
            Action="lambda:InvokeFunction", Principal="apigateway.amazonaws.com"),
        "permission for another principal": outcome(
            lam.add_permission, FunctionName=name, Qualifier="live", StatementId="s3",
            Action="lambda:InvokeFunction", Principal="s3.amazonaws.com"),
        "delete the function": outcome(lam.delete_function, FunctionName=name),
    }


def scoped_user(moto: IamMoto, user: str, policy: dict[str, Any]) -> Any:
    return moto.user(user, policy).client("lambda", endpoint_url=moto.aws.endpoint_url)


def test_plain_moto_cannot_tell_functions_apart(plain: IamMoto) -> None:
    lam = scoped_user(plain, "scoped", SCOPED)
    assert set(calls(lam, FUNCTION).values()) <= {"denied", "SignatureDoesNotMatch"}
    widened = {**SCOPED, "Statement": [{**s, "Resource": "*"} for s in SCOPED["Statement"]]}
    wide = scoped_user(plain, "widened", widened)
    assert outcome(wide.publish_version, FunctionName=OTHER) == "ok"  # any function
    assert outcome(wide.get_alias, FunctionName=FUNCTION,
                   Name="live") == "SignatureDoesNotMatch"
    assert outcome(wide.invoke, FunctionName=FUNCTION, Qualifier="1",
                   Payload=b"{}") == "denied"  # moto asks for lambda:Invoke


def test_with_the_fix_the_policy_scopes_functions_versions_and_principals(
        fixed: IamMoto) -> None:
    lam = scoped_user(fixed, "scoped", SCOPED)
    assert calls(lam, FUNCTION) == {
        "get configuration": "ok", "get alias": "ok", "list versions": "ok",
        "publish": "ok", "invoke version": "ok", "invoke $LATEST": "denied",
        "permission for the API": "ok", "permission for another principal": "denied",
        "delete the function": "denied"}
    assert set(calls(lam, OTHER).values()) == {"denied"}
    # a version is deleted, the function is not (the qualified ARN only)
    lam_admin = fixed.client("lambda")
    lam_admin.update_function_configuration(FunctionName=FUNCTION, Description="two")
    assert lam_admin.publish_version(FunctionName=FUNCTION)["Version"] == "2"
    assert outcome(lam.delete_function, FunctionName=FUNCTION, Qualifier="2") == "ok"
    assert outcome(lam.delete_function, FunctionName=OTHER, Qualifier="1") == "denied"
    assert lam_admin.get_function(FunctionName=FUNCTION)["Configuration"]["FunctionName"] \
        == FUNCTION


@pytest.mark.parametrize("path,arn", [
    ("/2015-03-31/functions/tdv-a/configuration?Qualifier=3", f"{ARN}tdv-a:3"),
    ("/2015-03-31/functions/tdv-a/configuration", f"{ARN}tdv-a"),
    ("/2015-03-31/functions/tdv-a:live/policy", f"{ARN}tdv-a:live"),
    (f"/2015-03-31/functions/{ARN.replace(':', '%3A')}tdv-a%3A4/invocations",
     f"{ARN}tdv-a:4"),
    ("/2015-03-31/functions/123456789012%3Afunction%3Atdv-a?Qualifier=5", f"{ARN}tdv-a:5"),
    ("/2015-03-31/functions/tdv-a/aliases/live", f"{ARN}tdv-a"),
    ("/2015-03-31/functions/tdv-a/versions", f"{ARN}tdv-a"),
    ("/2018-10-31/layers/tdv-a-dill/versions/2",
     f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:tdv-a-dill:2"),
    (f"/2018-10-31/layers?find=LayerVersion&Arn=arn:aws:lambda:us-east-1:{ACCOUNT}:layer:x:1",
     f"arn:aws:lambda:us-east-1:{ACCOUNT}:layer:x:1"),
    ("/2015-03-31/functions/", "*"),
])
def test_the_arn_a_request_addresses(path: str, arn: str) -> None:
    assert lambda_resource(path, "aws", "us-east-1", ACCOUNT) == arn


def test_the_principal_condition_key() -> None:
    body = json.dumps({"Principal": "apigateway.amazonaws.com"}).encode()
    assert request_context("lambda:AddPermission", body) == {
        "lambda:Principal": "apigateway.amazonaws.com"}
    assert request_context("lambda:PublishVersion", body) == {}
    assert request_context("lambda:AddPermission", b"not json") == {}
