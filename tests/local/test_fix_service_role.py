"""``tdv_airflow.local.fix_service_role``: CloudFormation creates a stack's roles as the
stack's service role.

The service role may create roles (and give them inline policies) only under one
permissions boundary. A template that asks for an administrator role without it is
created on moto as it is (when that stops, moto has caught up and the fix can go); with
the fix the stack fails as on AWS: the role's ``CREATE_FAILED`` event names the refused
action, what was created before it is deleted, the stack is ``ROLLBACK_COMPLETE``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from testkit.iam_moto import ACCOUNT, IamMoto, start_enforcing
from tests.local.conftest import Moto

ADMIN_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "*", "Resource": "*"}]}
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/tdv-function-boundary"
SERVICE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/tdv-deployer"
#: The service role: roles named tdv-* only under BOUNDARY; logs freely.
SERVICE_POLICY = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iam:CreateRole", "iam:PutRolePolicy"],
     "Resource": f"arn:aws:iam::{ACCOUNT}:role/tdv-*",
     "Condition": {"StringEquals": {"iam:PermissionsBoundary": BOUNDARY}}},
    {"Effect": "Allow", "Action": "logs:*", "Resource": "*"}]}


def template(boundary: str | None, managed: list[str] | None = None) -> str:
    """A log group, then (depending on it) a role with an administrator inline policy."""
    role: dict[str, Any] = {
        "RoleName": "tdv-escalate",
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
             "Action": "sts:AssumeRole"}]},
        "Policies": [{"PolicyName": "everything", "PolicyDocument": ADMIN_POLICY}]}
    if boundary:
        role["PermissionsBoundary"] = boundary
    if managed:
        role["ManagedPolicyArns"] = managed
    return json.dumps({"Resources": {
        "Logs": {"Type": "AWS::Logs::LogGroup",
                 "Properties": {"LogGroupName": "/tdv/escalate", "RetentionInDays": 1}},
        "Role": {"Type": "AWS::IAM::Role", "DependsOn": "Logs", "Properties": role}}})


@pytest.fixture(scope="module")
def enforcing(tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[Callable[[tuple[str, ...]], IamMoto]]:
    """Enforcing moto servers (one per set of fixes) holding the boundary policy and the
    service role."""
    started: dict[tuple[str, ...], IamMoto] = {}

    def start(fixes: tuple[str, ...]) -> IamMoto:
        if fixes not in started:
            moto = start_enforcing(tmp_path_factory.mktemp("moto") / "moto.log", fixes)
            iam = moto.client("iam")
            iam.create_policy(PolicyName="tdv-function-boundary", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}))
            iam.create_role(RoleName="tdv-deployer", AssumeRolePolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "cloudformation.amazonaws.com"},
                     "Action": "sts:AssumeRole"}]}))
            iam.put_role_policy(RoleName="tdv-deployer", PolicyName="deploy",
                                PolicyDocument=json.dumps(SERVICE_POLICY))
            started[fixes] = moto
        return started[fixes]

    try:
        yield start
    finally:
        for moto in started.values():
            moto.aws.stop()


def stack(cfn: Any, name: str) -> dict[str, Any]:
    return dict(cfn.describe_stacks(StackName=name)["Stacks"][0])


def role_names(moto: IamMoto | Moto) -> list[str]:
    return [r["RoleName"] for r in moto.client("iam").list_roles()["Roles"]]


def test_moto_alone_creates_the_administrator_role(
        enforcing: Callable[[tuple[str, ...]], IamMoto]) -> None:
    moto = enforcing(())
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName="escalate", TemplateBody=template(None),
                     RoleARN=SERVICE_ROLE, Capabilities=["CAPABILITY_NAMED_IAM"])
    assert stack(cfn, "escalate")["StackStatus"] == "CREATE_COMPLETE"
    role = moto.client("iam").get_role(RoleName="tdv-escalate")["Role"]
    assert "PermissionsBoundary" not in role


def test_with_the_fix_a_role_without_the_boundary_fails_the_stack(
        enforcing: Callable[[tuple[str, ...]], IamMoto]) -> None:
    moto = enforcing(("fix_service_role",))
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName="escalate", TemplateBody=template(None),
                     RoleARN=SERVICE_ROLE, Capabilities=["CAPABILITY_NAMED_IAM"])
    assert stack(cfn, "escalate")["StackStatus"] == "ROLLBACK_COMPLETE"
    events = cfn.describe_stack_events(StackName="escalate")["StackEvents"]
    failed = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    assert [e["LogicalResourceId"] for e in failed] == ["Role"]
    reason = failed[0]["ResourceStatusReason"]
    assert "is not authorized to perform: iam:CreateRole on resource: " \
           f"arn:aws:iam::{ACCOUNT}:role/tdv-escalate" in reason
    assert "assumed-role/tdv-deployer/" in reason
    assert [e["ResourceStatus"] for e in events[:2]] == ["ROLLBACK_COMPLETE",
                                                         "ROLLBACK_IN_PROGRESS"]
    assert "tdv-escalate" not in role_names(moto)
    groups = moto.client("logs").describe_log_groups(logGroupNamePrefix="/tdv/")
    assert groups["logGroups"] == []  # created before the role, deleted by the rollback


def test_with_the_fix_the_boundary_lets_the_role_be_created(
        enforcing: Callable[[tuple[str, ...]], IamMoto]) -> None:
    moto = enforcing(("fix_service_role",))
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName="bounded", TemplateBody=template(BOUNDARY),
                     RoleARN=SERVICE_ROLE, Capabilities=["CAPABILITY_NAMED_IAM"])
    assert stack(cfn, "bounded")["StackStatus"] == "CREATE_COMPLETE"
    role = moto.client("iam").get_role(RoleName="tdv-escalate")["Role"]
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == BOUNDARY
    cfn.delete_stack(StackName="bounded")


def test_with_the_fix_a_managed_policy_needs_its_own_grant(
        enforcing: Callable[[tuple[str, ...]], IamMoto]) -> None:
    moto = enforcing(("fix_service_role",))
    cfn = moto.client("cloudformation")
    admin = "arn:aws:iam::aws:policy/AdministratorAccess"
    cfn.create_stack(StackName="attach", RoleARN=SERVICE_ROLE,
                     TemplateBody=template(BOUNDARY, [admin]),
                     Capabilities=["CAPABILITY_NAMED_IAM"])
    assert stack(cfn, "attach")["StackStatus"] == "ROLLBACK_COMPLETE"
    events = cfn.describe_stack_events(StackName="attach")["StackEvents"]
    assert any("iam:AttachRolePolicy" in (e.get("ResourceStatusReason") or "") for e in events)


def test_with_the_fix_a_stack_without_service_role_is_the_caller_s(
        enforcing: Callable[[tuple[str, ...]], IamMoto]) -> None:
    """Without ``RoleARN`` CloudFormation acts with the caller's permissions, which moto
    checks only for the CreateStack call itself: the fix leaves that case alone."""
    moto = enforcing(("fix_service_role",))
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName="as-caller", TemplateBody=template(None),
                     Capabilities=["CAPABILITY_NAMED_IAM"])
    assert stack(cfn, "as-caller")["StackStatus"] == "CREATE_COMPLETE"


def test_moto_that_does_not_enforce_iam_is_unchanged(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(("fix_service_role",))
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName="open", TemplateBody=template(None), RoleARN=SERVICE_ROLE,
                     Capabilities=["CAPABILITY_NAMED_IAM"])
    assert stack(cfn, "open")["StackStatus"] == "CREATE_COMPLETE"
    assert "tdv-escalate" in role_names(moto)
