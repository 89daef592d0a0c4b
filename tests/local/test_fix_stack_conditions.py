"""``tdv_airflow.local.fix_stack_conditions``: the caller's ``cloudformation:TemplateUrl``
and ``cloudformation:RoleArn`` conditions hold on CreateStack and UpdateStack.

A user may create and update stacks only from templates under ``ok/`` and only with one
service role. On moto as it is, the same user creates a stack from an inline template
(when that stops being possible, moto has caught up and the fix can go); with the fix, it
is refused as on AWS, and so are a template elsewhere and a missing or other role.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testkit.iam_moto import ACCOUNT, IamMoto, start_enforcing
from testkit.models import access_denied

BUCKET = "tdv-fix-conditions"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/tdv-deployer"
TEMPLATE = {"Resources": {"Logs": {"Type": "AWS::Logs::LogGroup",
                                   "Properties": {"RetentionInDays": 1}}}}
ALLOWED_URLS = f"https://{BUCKET}.s3.amazonaws.com/ok/*"
POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["cloudformation:CreateStack", "cloudformation:UpdateStack"],
     "Resource": "*",
     "Condition": {"StringLike": {"cloudformation:TemplateUrl": ALLOWED_URLS},
                   "ArnEquals": {"cloudformation:RoleArn": ROLE}}},
    {"Effect": "Allow", "Action": ["cloudformation:DescribeStacks"], "Resource": "*"}]}


def url(key: str) -> str:
    return f"https://{BUCKET}.s3.amazonaws.com/{key}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Callable[[tuple[str, ...]], tuple[IamMoto, Any]]]:
    """Enforcing moto servers with the given fixes (one per set of fixes), each with the
    templates and a user."""
    started: dict[tuple[str, ...], tuple[IamMoto, Any]] = {}

    def start(fixes: tuple[str, ...]) -> tuple[IamMoto, Any]:
        if fixes in started:
            return started[fixes]
        moto = start_enforcing(tmp_path_factory.mktemp("moto") / "moto.log", fixes)
        s3 = moto.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for key in ("ok/t.json", "elsewhere/t.json"):
            s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(TEMPLATE).encode())
        moto.client("iam").create_role(RoleName="tdv-deployer", AssumeRolePolicyDocument="{}")
        started[fixes] = moto, moto.user("deployer", POLICY).client(
            "cloudformation", endpoint_url=moto.aws.endpoint_url)
        return started[fixes]

    try:
        yield start
    finally:
        for moto, _ in started.values():
            moto.aws.stop()


def refused(call: Callable[[], Any]) -> bool:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - the test asks whether it was an AccessDenied
        return access_denied(exc)
    return False


def test_moto_alone_ignores_the_conditions(
        servers: Callable[[tuple[str, ...]], tuple[IamMoto, Any]]) -> None:
    _, cfn = servers(())
    cfn.create_stack(StackName="inline", TemplateBody=json.dumps(TEMPLATE))
    cfn.create_stack(StackName="elsewhere", TemplateURL=url("elsewhere/t.json"))
    assert cfn.describe_stacks(StackName="inline")["Stacks"][0]["StackStatus"] \
        == "CREATE_COMPLETE"


def test_with_the_fix_only_allowed_templates_and_the_role_pass(
        servers: Callable[[tuple[str, ...]], tuple[IamMoto, Any]]) -> None:
    moto, cfn = servers(("fix_stack_conditions",))
    assert refused(lambda: cfn.create_stack(StackName="inline",
                                            TemplateBody=json.dumps(TEMPLATE), RoleARN=ROLE))
    assert refused(lambda: cfn.create_stack(StackName="elsewhere", RoleARN=ROLE,
                                            TemplateURL=url("elsewhere/t.json")))
    assert refused(lambda: cfn.create_stack(StackName="no-role",
                                            TemplateURL=url("ok/t.json")))
    assert refused(lambda: cfn.create_stack(
        StackName="other-role", TemplateURL=url("ok/t.json"),
        RoleARN=f"arn:aws:iam::{ACCOUNT}:role/admin"))
    names = [s["StackName"] for s in moto.client("cloudformation").describe_stacks()["Stacks"]]
    assert names == []
    cfn.create_stack(StackName="allowed", TemplateURL=url("ok/t.json"), RoleARN=ROLE)
    assert cfn.describe_stacks(StackName="allowed")["Stacks"][0]["StackStatus"] \
        == "CREATE_COMPLETE"
    assert refused(lambda: cfn.update_stack(StackName="allowed", RoleARN=ROLE,
                                            TemplateURL=url("elsewhere/t.json")))
    assert refused(lambda: cfn.update_stack(StackName="allowed", UsePreviousTemplate=True,
                                            RoleARN=ROLE))


def test_an_explicit_deny_wins(servers: Callable[[tuple[str, ...]], tuple[IamMoto, Any]]
                               ) -> None:
    moto, _ = servers(("fix_stack_conditions",))
    deny = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "cloudformation:CreateStack", "Resource": "*",
         "Condition": {"StringNotLike": {"cloudformation:TemplateUrl": ALLOWED_URLS}}}]}
    admin_but = moto.user("admin-but", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]}, deny)
    cfn = admin_but.client("cloudformation", endpoint_url=moto.aws.endpoint_url)
    assert refused(lambda: cfn.create_stack(StackName="denied",
                                            TemplateURL=url("elsewhere/t.json")))
    cfn.create_stack(StackName="fine", TemplateURL=url("ok/t.json"))
