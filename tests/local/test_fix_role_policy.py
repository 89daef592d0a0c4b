"""``tdv_airflow.local.fix_role_policy``: a stack update rewrites a role's policies.

The same update runs on moto as it is and on moto with only this fix: the first shows
what moto lacks (when it stops failing, moto has caught up and the fix can go), the
second what AWS does. The role's policy names its parameter with ``Ref`` (through
``Fn::Join``), which moto's update diff sees without :mod:`~tdv_airflow.local.fix_update_refs`.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from typing import Any

from tests.local.conftest import Moto

TRUST = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
    "Action": "sts:AssumeRole"}]}
BOUNDARY = "arn:aws:iam::123456789012:policy/tdv-boundary"


def template(*, second_policy: bool = False, service: str = "lambda.amazonaws.com",
             boundary: str | None = None) -> str:
    """A role reading ``b/${Key}``; optionally a second inline policy, another trusted
    service and a permissions boundary."""
    read = {"Fn::Join": ["", ["arn:aws:s3:::b/", {"Ref": "Key"}]]}
    policies = [{"PolicyName": "read", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": read}]}}]
    if second_policy:
        policies.append({"PolicyName": "logs", "PolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Action": "logs:PutLogEvents",
                "Resource": "arn:aws:logs:us-east-1:123456789012:log-group:x:*"}]}})
    trust = json.loads(json.dumps(TRUST).replace("lambda.amazonaws.com", service))
    props: dict[str, Any] = {"AssumeRolePolicyDocument": trust, "Policies": policies}
    if boundary:
        props["PermissionsBoundary"] = boundary
    return json.dumps({"Parameters": {"Key": {"Type": "String"}},
                       "Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": props}}})


def deploy(moto: Moto, stack: str, key: str, body: str, *, update: bool) -> None:
    cfn = moto.client("cloudformation")
    call = cfn.update_stack if update else cfn.create_stack
    call(StackName=stack, TemplateBody=body, Capabilities=["CAPABILITY_IAM"],
         Parameters=[{"ParameterKey": "Key", "ParameterValue": key}])


def role_state(moto: Moto, stack: str) -> dict[str, Any]:
    """The role's inline policies (name -> resources read), trust and boundary."""
    cfn, iam = moto.client("cloudformation"), moto.client("iam")
    name = next(r["PhysicalResourceId"] for r in
                cfn.describe_stack_resources(StackName=stack)["StackResources"]
                if r["LogicalResourceId"] == "Role")
    role = iam.get_role(RoleName=name)["Role"]
    policies = {}
    for policy in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        doc = iam.get_role_policy(RoleName=name, PolicyName=policy)["PolicyDocument"]
        if isinstance(doc, str):  # moto alone answers the Python repr of the document
            doc = ast.literal_eval(doc)
        policies[policy] = [s["Resource"] for s in doc["Statement"]]
    principal = role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
    return {"policies": policies, "trusts": principal,
            "boundary": role.get("PermissionsBoundary", {}).get("PermissionsBoundaryArn")}


def documents_are_json(moto: Moto, stack: str) -> bool:
    """Whether every inline policy of the stack's role reads back as a JSON document."""
    cfn, iam = moto.client("cloudformation"), moto.client("iam")
    name = next(r["PhysicalResourceId"] for r in
                cfn.describe_stack_resources(StackName=stack)["StackResources"]
                if r["LogicalResourceId"] == "Role")
    return all(isinstance(iam.get_role_policy(RoleName=name, PolicyName=p)["PolicyDocument"],
                          dict)
               for p in iam.list_role_policies(RoleName=name)["PolicyNames"])


def run_update(moto: Moto, stack: str) -> dict[str, Any]:
    """Create with model one, then update to model two with a second policy, another
    trusted service and a boundary; the role afterwards."""
    deploy(moto, stack, "one.pkl", template(), update=False)
    assert role_state(moto, stack)["policies"] == {"read": ["arn:aws:s3:::b/one.pkl"]}
    deploy(moto, stack, "two.pkl", template(second_policy=True, service="edgelambda.amazonaws.com",
                                            boundary=BOUNDARY), update=True)
    return role_state(moto, stack)


def test_moto_alone_keeps_the_first_policy(moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(())
    state = run_update(moto, "tdv-role-no-fix")
    assert not documents_are_json(moto, "tdv-role-no-fix")
    assert state["policies"] == {"read": ["arn:aws:s3:::b/one.pkl"]}
    assert (state["trusts"], state["boundary"]) == ("lambda.amazonaws.com", None)


def test_with_the_fix_the_update_rewrites_policies_trust_and_boundary(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(("fix_role_policy",))
    state = run_update(moto, "tdv-role-fix")
    assert documents_are_json(moto, "tdv-role-fix")
    assert state == {"policies": {"read": ["arn:aws:s3:::b/two.pkl"],
                                  "logs": ["arn:aws:logs:us-east-1:123456789012:log-group:x:*"]},
                     "trusts": "edgelambda.amazonaws.com", "boundary": BOUNDARY}
    deploy(moto, "tdv-role-fix", "three.pkl", template(), update=True)
    assert role_state(moto, "tdv-role-fix") == {
        "policies": {"read": ["arn:aws:s3:::b/three.pkl"]},  # the dropped policy is deleted
        "trusts": "lambda.amazonaws.com", "boundary": None}
