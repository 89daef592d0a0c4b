"""The service role's policy, checked against CloudFormation's own needs.

CloudFormation creates, reads, updates and deletes each resource through its type's
handlers; each handler's ``permissions`` (in the resource type schema, see
https://docs.aws.amazon.com/cloudformation-cli/latest/userguide/resource-type-schema.html)
are the IAM actions it calls with the service role. cfn-lint ships those schemas
(``cfnlint/data/schemas``: ``providers/us-east-1.json`` maps a type to
``resources/<hash>.json``). For every resource type of the shipped template (read from
the template itself) the published policy must grant every permission of its create,
read, update and delete handlers and of its tagging, except the few in :data:`WITHHELD`,
each withheld because only a property the template does not set needs it (checked), or
because granting it would let a template widen access. ``list`` handlers are left out:
stack operations do not call them (they serve Cloud Control's ``ListResources``).

So adding a resource type to the template without its permissions fails here (shown with
a copy of the template that adds an ``AWS::SQS::Queue``), and so does a grant no handler
needs.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core import iam

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "templates" / "stack_template.json"
HANDLERS = ("create", "read", "update", "delete")

#: (resource type, handler permission) -> (the property that alone needs it, or ``None``
#: when it is withheld whatever the template says; why). Each is argued in docs/iam.md.
WITHHELD: dict[tuple[str, str], tuple[str | None, str]] = {
    **{("AWS::Lambda::Function", action): ("VpcConfig", "the function runs outside any VPC")
       for action in ("ec2:DescribeNetworkInterfaces", "ec2:DescribeSecurityGroups",
                      "ec2:DescribeSubnets", "ec2:DescribeVpcs")},
    **{("AWS::Lambda::Function", action): ("FileSystemConfigs", "no file system is mounted")
       for action in ("elasticfilesystem:DescribeMountTargets", "s3files:ListMountTargets")},
    **{("AWS::Lambda::Function", action): (
        "KmsKeyArn", "the environment is encrypted with Lambda's own key, not one the "
                     "stack would have to be granted (kms:Decrypt is granted on the "
                     "artifact key only, for the code and layer zips)")
       for action in ("kms:CreateGrant", "kms:DescribeKey", "kms:Encrypt",
                      "kms:GenerateDataKey")},
    **{("AWS::Lambda::Function", action): ("CodeSigningConfigArn", "no code signing")
       for action in ("lambda:GetCodeSigningConfig", "lambda:PutFunctionCodeSigningConfig",
                      "lambda:DeleteFunctionCodeSigningConfig")},
    ("AWS::Lambda::Function", "lambda:PassCapacityProvider"): (
        "CapacityProviderConfig", "the function runs on Lambda's own capacity"),
    ("AWS::Lambda::Function", "s3:GetObjectVersion"): (
        "Code.S3ObjectVersion", "artifact keys are content-addressed, never versioned"),
    ("AWS::Lambda::LayerVersion", "s3:GetObjectVersion"): (
        "Content.S3ObjectVersion", "artifact keys are content-addressed, never versioned"),
    ("AWS::IAM::Role", "iam:AttachRolePolicy"): (
        "ManagedPolicyArns", "the function role has only its inline policy"),
    ("AWS::IAM::Role", "iam:DeleteRolePermissionsBoundary"): (
        None, "removing the boundary would lift the cap on a function role"),
    ("AWS::IAM::Role", "iam:UpdateAssumeRolePolicy"): (
        None, "the function role trusts Lambda only and no template version changes that; "
              "granting it would let a template open a role to any principal"),
    ("AWS::ApiGateway::RestApi", "apigateway:UpdateRestApiPolicy"): (
        "Policy", "a resource policy could open the API to other accounts"),
    **{("AWS::Logs::LogGroup", action): ("KmsKeyId", "logs use CloudWatch Logs' own key")
       for action in ("logs:AssociateKmsKey", "logs:DisassociateKmsKey")},
    **{("AWS::Logs::LogGroup", action): (
        "ResourcePolicyDocument", "resource policies of CloudWatch Logs would let other "
                                  "principals write or read the logs")
       for action in ("logs:PutResourcePolicy", "logs:DeleteResourcePolicy")},
    ("AWS::Logs::LogGroup", "logs:PutBearerTokenAuthentication"): (
        "BearerTokenAuthenticationEnabled", "no bearer-token log ingestion"),
    **{("AWS::Logs::LogGroup", action): (
        "DataProtectionPolicy", "audit findings of a data protection policy are delivered "
                                "to S3 or Firehose; the template sets no such policy")
       for action in ("logs:CreateLogDelivery", "s3:REST.PUT.OBJECT",
                      "firehose:TagDeliveryStream")},
}


def _schemas() -> Path:
    import cfnlint

    return Path(cfnlint.__file__).parent / "data" / "schemas"


@cache
def handler_permissions(resource_type: str) -> frozenset[str]:
    """Every permission of the type's create/read/update/delete handlers and tagging."""
    provider = json.loads((_schemas() / "providers" / "us-east-1.json").read_text())
    if resource_type not in provider:
        return frozenset({f"<no resource schema for {resource_type}>"})
    schema = json.loads((_schemas() / "resources" / f"{provider[resource_type]}.json")
                        .read_text())
    found: set[str] = set()
    for handler in HANDLERS:
        found |= set(schema.get("handlers", {}).get(handler, {}).get("permissions", []))
    tagging = schema.get("tagging", {})
    if tagging.get("taggable"):
        found |= set(tagging.get("permissions", []))
    return frozenset(found)


def granted_actions(policy: dict[str, Any]) -> list[str]:
    return [a for s in policy["Statement"] if s["Effect"] == "Allow" for a in s["Action"]]


def grants(patterns: list[str], action: str) -> bool:
    """Whether an action pattern of the policy covers ``action`` (IAM: case-insensitive)."""
    return any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns)


def missing_permissions(template: dict[str, Any], policy: dict[str, Any]
                        ) -> dict[str, set[str]]:
    """Per resource type of ``template``, the handler permissions ``policy`` lacks."""
    granted = granted_actions(policy)
    missing: dict[str, set[str]] = {}
    for resource_type in sorted({r["Type"] for r in template["Resources"].values()}):
        for action in handler_permissions(resource_type):
            if (resource_type, action) not in WITHHELD and not grants(granted, action):
                missing.setdefault(resource_type, set()).add(action)
    return missing


def shipped() -> dict[str, Any]:
    return dict(json.loads(TEMPLATE.read_text()))


def with_queue(template: dict[str, Any]) -> dict[str, Any]:
    grown = copy.deepcopy(template)
    grown["Resources"]["Queue"] = {"Type": "AWS::SQS::Queue", "Properties": {}}
    return grown


@pytest.mark.parametrize("build,lacking", [
    (lambda t: t, {}),
    (with_queue, {"AWS::SQS::Queue": {"sqs:CreateQueue", "sqs:GetQueueAttributes",
                                      "sqs:DeleteQueue"}}),
], ids=["shipped template", "template plus an SQS queue"])
def test_the_policy_grants_every_handler_permission_of_the_template_s_types(
        build: Any, lacking: dict[str, set[str]]) -> None:
    missing = missing_permissions(build(shipped()), iam.cloudformation_service_role_policy())
    assert set(missing) == set(lacking), missing
    for resource_type, actions in lacking.items():
        assert actions <= missing[resource_type], missing


def test_a_type_without_a_schema_is_reported() -> None:
    template = shipped()
    template["Resources"]["Odd"] = {"Type": "Custom::Thing", "Properties": {}}
    missing = missing_permissions(template, iam.cloudformation_service_role_policy())
    assert missing == {"Custom::Thing": {"<no resource schema for Custom::Thing>"}}


def _sets(properties: dict[str, Any], path: str) -> bool:
    for part in path.split("."):
        if not isinstance(properties, dict) or part not in properties:
            return False
        properties = properties[part]
    return True


@pytest.mark.parametrize("key", sorted(WITHHELD), ids=lambda k: f"{k[0]} {k[1]}")
def test_each_withheld_permission_is_still_a_handler_s_and_still_unneeded(
        key: tuple[str, str]) -> None:
    resource_type, action = key
    needed_by, why = WITHHELD[key]
    assert action in handler_permissions(resource_type), \
        f"{action} is no longer a {resource_type} handler permission: drop it from WITHHELD"
    assert not grants(granted_actions(iam.cloudformation_service_role_policy()), action)
    if needed_by is not None:
        setting = [name for name, r in shipped()["Resources"].items()
                   if r["Type"] == resource_type and _sets(r.get("Properties", {}), needed_by)]
        assert setting == [], f"{setting} set {needed_by}: grant {action} ({why})"
    assert action in (ROOT / "docs" / "iam.md").read_text(), f"argue {action} in docs/iam.md"


def test_every_grant_is_some_handler_s_need() -> None:
    needed = set().union(*(handler_permissions(r["Type"])
                           for r in shipped()["Resources"].values()))
    extra = [a for a in granted_actions(iam.cloudformation_service_role_policy())
             if not any(fnmatch.fnmatchcase(n.lower(), a.lower()) for n in needed)]
    assert extra == []


def test_the_withheld_trust_change_is_not_needed() -> None:
    """``iam:UpdateAssumeRolePolicy`` is withheld: every role of the template trusts
    Lambda alone, the same in every version of the template."""
    roles = [r for r in shipped()["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
    assert roles
    for role in roles:
        statements = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert [s["Principal"] for s in statements] == [{"Service": "lambda.amazonaws.com"}]


def test_unscoped_statements_are_only_the_argued_ones() -> None:
    for build in (iam.airflow_identity_policy, iam.cloudformation_service_role_policy,
                  iam.function_permissions_boundary):
        for statement in build()["Statement"]:
            resources = statement["Resource"]
            if resources == "*" or "*" in resources:
                assert tuple(statement["Action"]) == iam.UNSCOPED_STATEMENTS[statement["Sid"]]
    text = (ROOT / "docs" / "iam.md").read_text()
    for actions in iam.UNSCOPED_STATEMENTS.values():
        assert all(a in text for a in actions)
