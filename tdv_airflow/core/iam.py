"""The IAM policies tdv-airflow needs.

Policies (published in ``docs/iam.md`` and as JSON next to it; tests keep the files equal
to what these functions return with their placeholder defaults):

- :func:`airflow_identity_policy`: what the identity behind the Airflow connection (or
  the ``Deploy`` credentials) needs for the calls tdv-airflow makes itself; it may create
  and update stacks only from templates under the artifact prefix and only with the
  service role, delete versions but never a function, and let only API Gateway invoke
  the ``live`` alias (or, for a function URL with ``EndpointAuth`` ``NONE``, anyone
  through that alias's URL: principal ``*`` on ``live`` only);
- :func:`cloudformation_service_role_policy`: what CloudFormation needs to create the
  stack's resources: the policy of the service role (``role_arn``), or, without one,
  further permissions of the caller, since CloudFormation then acts with them; it may
  create a role only under the function permissions boundary;
- :func:`cloudformation_service_role_trust_policy`: who may assume the service role;
- :func:`function_permissions_boundary`: the most a function role may ever do, whatever
  a template grants it (the template's ``PermissionsBoundaryArn`` parameter).

Every argument defaults to a ``${Placeholder}``, so the documents can also be pasted into
a CloudFormation ``Fn::Sub``. The hardening checks of the stack template live with the
tests, in ``testkit/template_checks.py``.
"""

from __future__ import annotations

import re
from typing import Any

from tdv_airflow.core.store import template_url
from tdv_airflow.core.versions import LIVE_ALIAS
from tdv_airflow.exceptions import InvalidInputError

_VERSION = "2012-10-17"
#: A customer managed policy ARN (what a permissions boundary must be).
POLICY_ARN_RE = re.compile(r"^arn:aws(-[a-z]+)*:iam::\d{12}:policy/([\w+=,.@-]+/)*[\w+=,.@-]+$")
#: The template parameter that sets the function role's permissions boundary.
BOUNDARY_PARAMETER = "PermissionsBoundaryArn"


def _arn(partition: str, service: str, region: str, account_id: str, resource: str) -> str:
    return f"arn:{partition}:{service}:{region}:{account_id}:{resource}"


def boundary_policy_arn(partition: str = "${Partition}", account_id: str = "${AccountId}",
                        name: str = "${BoundaryPolicyName}") -> str:
    """The ARN of the managed policy created from :func:`function_permissions_boundary`.

    :param partition: the partition.
    :param account_id: the account.
    :param name: the policy's name.
    """
    return f"arn:{partition}:iam::{account_id}:policy/{name}"


def check_permissions_boundary_arn(value: Any) -> str | None:
    """Return ``value`` (``None`` allowed) if it is a managed policy ARN.

    :param value: the candidate ``permissions_boundary_arn``.
    :raises InvalidInputError: when it is not ``arn:<partition>:iam::<account>:policy/<name>``.
    """
    if value is None:
        return None
    if not isinstance(value, str) or not POLICY_ARN_RE.match(value):
        raise InvalidInputError(
            f"invalid permissions_boundary_arn {value!r}: expected the ARN of the managed "
            "policy every function role is bounded by, e.g. "
            "arn:aws:iam::123456789012:policy/tdv-function-boundary (see docs/iam.md)")
    return value


def template_url_patterns(bucket: str, artifact_prefix: str, region: str) -> list[str]:
    """The ``TemplateURL`` values prepare gives CloudFormation for its templates, as
    ``StringLike`` patterns (both S3 host forms when the region is a placeholder).

    :param bucket: the artifact bucket.
    :param artifact_prefix: the artifacts' ``s3_prefix``.
    :param region: the region (or ``${Region}``).
    """
    regions = [region, "us-east-1"] if region.startswith("${") else [region]
    return sorted({template_url(bucket, f"{artifact_prefix}/template/*", r) for r in regions})


def airflow_identity_policy(
    *,
    bucket: str = "${Bucket}",
    model_prefix: str = "${ModelPrefix}",
    artifact_prefix: str = "${ArtifactPrefix}",
    stack_prefix: str = "${StackPrefix}",
    account_id: str = "${AccountId}",
    region: str = "${Region}",
    partition: str = "${Partition}",
    service_role_name: str | None = "${ServiceRoleName}",
    artifact_kms_key_arn: str | None = "${ArtifactKmsKeyArn}",
) -> dict[str, Any]:
    """The policy of the identity that runs prepare, create, the status checks, the
    rollout (versions, the live alias, its alarms: :func:`rollout_statements`), the local
    run and the API key lookup.

    :param bucket: the bucket holding the models and the artifacts.
    :param model_prefix: the key prefix of the models (e.g. ``models/``; ``""`` for any).
    :param artifact_prefix: the ``s3_prefix`` of the artifacts (default ``tdv-airflow``).
    :param stack_prefix: what every stack name starts with (e.g. ``tdv-``).
    :param account_id: the AWS account.
    :param region: the region of the stacks.
    :param partition: ``aws``, ``aws-cn`` or ``aws-us-gov``.
    :param service_role_name: the CloudFormation service role passed as ``role_arn``;
        ``None`` when no service role is used (no ``iam:PassRole`` statement, no
        ``cloudformation:RoleArn`` condition).
    :param artifact_kms_key_arn: the KMS key of the bucket's default encryption (SSE-KMS);
        ``None`` for SSE-S3 buckets (no KMS statement).
    """
    s3 = f"arn:{partition}:s3:::{bucket}"
    stacks = _arn(partition, "cloudformation", region, account_id, f"stack/{stack_prefix}*/*")
    service_role = f"arn:{partition}:iam::{account_id}:role/{service_role_name}"
    conditions: dict[str, Any] = {"StringLike": {
        "cloudformation:TemplateUrl": template_url_patterns(bucket, artifact_prefix, region)}}
    if service_role_name is not None:
        conditions["ArnEquals"] = {"cloudformation:RoleArn": [service_role]}
    statements: list[dict[str, Any]] = [
        {"Sid": "FindArtifactBucket", "Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:GetEncryptionConfiguration"], "Resource": [s3]},
        {"Sid": "ReadModels", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{s3}/{model_prefix}*"]},
        {"Sid": "ReadArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{s3}/{artifact_prefix}/*"]},
        {"Sid": "WriteArtifacts", "Effect": "Allow", "Action": ["s3:PutObject"],
         "Resource": [f"{s3}/{artifact_prefix}/*"]},
        {"Sid": "EndIncompleteUploads", "Effect": "Allow",
         "Action": ["s3:AbortMultipartUpload"], "Resource": [f"{s3}/{artifact_prefix}/*"]},
        {"Sid": "ListIncompleteUploads", "Effect": "Allow",
         "Action": ["s3:ListBucketMultipartUploads"], "Resource": [s3]},
    ]
    if artifact_kms_key_arn is not None:
        statements.append({"Sid": "UseArtifactKey", "Effect": "Allow",
                           "Action": ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                           "Resource": [artifact_kms_key_arn]})
    statements += [
        {"Sid": "ReadDeploymentStacks", "Effect": "Allow",
         "Action": ["cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
                    "cloudformation:DescribeStackResources"], "Resource": [stacks]},
        {"Sid": "ChangeDeploymentStacks", "Effect": "Allow",
         "Action": ["cloudformation:CreateStack", "cloudformation:UpdateStack"],
         "Resource": [stacks], "Condition": conditions},
        {"Sid": "TagDeploymentStacks", "Effect": "Allow",
         "Action": ["cloudformation:TagResource"], "Resource": [stacks]},
        {"Sid": "DeleteDeploymentStacks", "Effect": "Allow",
         "Action": ["cloudformation:DeleteStack"], "Resource": [stacks]},
    ]
    if service_role_name is not None:
        statements.append({"Sid": "PassServiceRole", "Effect": "Allow",
                           "Action": ["iam:PassRole"], "Resource": [service_role],
                           "Condition": {"StringEquals": {
                               "iam:PassedToService": "cloudformation.amazonaws.com"}}})
    functions = _arn(partition, "lambda", region, account_id, f"function:{stack_prefix}*")
    statements += [
        {"Sid": "ReadDeployedFunctions", "Effect": "Allow",
         "Action": ["lambda:GetFunction", "lambda:GetFunctionConfiguration"],
         "Resource": [functions]},
        *rollout_statements(stack_prefix=stack_prefix, account_id=account_id, region=region,
                            partition=partition),
        {"Sid": "ReadDeployedLayers", "Effect": "Allow", "Action": ["lambda:GetLayerVersion"],
         "Resource": [_arn(partition, "lambda", region, account_id,
                           f"layer:{stack_prefix}*:*")]},
        {"Sid": "ReadApiKeys", "Effect": "Allow", "Action": ["apigateway:GET"],
         "Resource": [f"arn:{partition}:apigateway:{region}::/apikeys/*"]},
    ]
    return {"Version": _VERSION, "Statement": statements}


def rollout_statements(*, stack_prefix: str = "${StackPrefix}",
                       account_id: str = "${AccountId}", region: str = "${Region}",
                       partition: str = "${Partition}") -> list[dict[str, Any]]:
    """The Airflow identity's statements for versions, the live alias and its alarms:
    publish and list versions, move the alias, let this API invoke it, give it a function
    URL (``FrontDoor`` ``URL``: the URL of the alias ``live``, public statements for
    ``EndpointAuth`` ``NONE`` added and removed), invoke versions (validation on AWS),
    delete old versions (never the function), read the alarms.

    :param stack_prefix: what every stack (hence function and alarm) name starts with.
    :param account_id: the AWS account.
    :param region: the region.
    :param partition: the partition.
    """
    functions = _arn(partition, "lambda", region, account_id, f"function:{stack_prefix}*")
    #: qualified ARNs only (``function:NAME:QUALIFIER``): a function name holds no ``:``,
    #: so this matches its versions and aliases, never the function itself
    qualified = f"{functions}:*"
    live = f"{functions}:{LIVE_ALIAS}"
    return [
        {"Sid": "PublishVersions", "Effect": "Allow",
         "Action": ["lambda:PublishVersion", "lambda:ListVersionsByFunction"],
         "Resource": [functions]},
        {"Sid": "MoveLiveAlias", "Effect": "Allow",
         "Action": ["lambda:GetAlias", "lambda:CreateAlias", "lambda:UpdateAlias"],
         "Resource": [functions]},
        {"Sid": "LetApiInvokeLiveAlias", "Effect": "Allow", "Action": ["lambda:AddPermission"],
         "Resource": [live],
         "Condition": {"StringEquals": {"lambda:Principal": "apigateway.amazonaws.com"}}},
        {"Sid": "ReadLiveAliasPolicy", "Effect": "Allow", "Action": ["lambda:GetPolicy"],
         "Resource": [live]},
        {"Sid": "ManageLiveAliasUrl", "Effect": "Allow",
         "Action": ["lambda:GetFunctionUrlConfig", "lambda:CreateFunctionUrlConfig",
                    "lambda:UpdateFunctionUrlConfig"],
         "Resource": [live]},
        {"Sid": "OpenLiveAliasUrl", "Effect": "Allow", "Action": ["lambda:AddPermission"],
         "Resource": [live], "Condition": {"StringEquals": {"lambda:Principal": "*"}}},
        {"Sid": "CloseLiveAliasUrl", "Effect": "Allow", "Action": ["lambda:RemovePermission"],
         "Resource": [live]},
        {"Sid": "ProvisionLiveAlias", "Effect": "Allow",
         "Action": ["lambda:GetProvisionedConcurrencyConfig",
                    "lambda:PutProvisionedConcurrencyConfig",
                    "lambda:DeleteProvisionedConcurrencyConfig"],
         "Resource": [live]},
        {"Sid": "InvokeVersions", "Effect": "Allow", "Action": ["lambda:InvokeFunction"],
         "Resource": [qualified]},
        {"Sid": "DeleteOldVersions", "Effect": "Allow", "Action": ["lambda:DeleteFunction"],
         "Resource": [qualified]},
        {"Sid": "ReadAlarms", "Effect": "Allow", "Action": ["cloudwatch:DescribeAlarms"],
         "Resource": [_arn(partition, "cloudwatch", region, account_id,
                           f"alarm:{stack_prefix}*")]},
    ]


#: What the service role may do to the stack's functions (every handler permission of
#: ``AWS::Lambda::Function``; see ``tests/core/test_service_role_permissions.py``).
FUNCTION_ACTIONS = (
    "lambda:AssociateRuntimeAlias", "lambda:CreateFunction",
    "lambda:DeleteFunction", "lambda:DeleteFunctionConcurrency", "lambda:GetFunction",
    "lambda:GetFunctionCodeSigningConfig", "lambda:GetFunctionRecursionConfig",
    "lambda:GetFunctionScalingConfig", "lambda:GetRuntimeManagementConfig",
    "lambda:ListTags", "lambda:PublishVersion", "lambda:PutFunctionConcurrency",
    "lambda:PutFunctionRecursionConfig", "lambda:PutFunctionScalingConfig",
    "lambda:PutRuntimeManagementConfig", "lambda:TagResource",
    "lambda:UntagResource", "lambda:UpdateFunctionCode", "lambda:UpdateFunctionConfiguration",
)
#: What the service role may do to the stack's alarms (``AWS::CloudWatch::Alarm``).
ALARM_ACTIONS = (
    "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms",
    "cloudwatch:TagResource", "cloudwatch:UntagResource", "cloudwatch:ListTagsForResource",
)
#: What the service role may do to the stack's log groups.
LOG_GROUP_ACTIONS = (
    "logs:CreateLogGroup", "logs:DeleteDataProtectionPolicy", "logs:DeleteIndexPolicy",
    "logs:DeleteLogGroup", "logs:DeleteRetentionPolicy", "logs:DescribeIndexPolicies",
    "logs:GetDataProtectionPolicy", "logs:ListTagsForResource",
    "logs:PutDataProtectionPolicy", "logs:PutIndexPolicy", "logs:PutLogGroupDeletionProtection",
    "logs:PutRetentionPolicy", "logs:TagResource", "logs:UntagResource",
)


def cloudformation_service_role_policy(
    *,
    bucket: str = "${Bucket}",
    artifact_prefix: str = "${ArtifactPrefix}",
    stack_prefix: str = "${StackPrefix}",
    account_id: str = "${AccountId}",
    region: str = "${Region}",
    partition: str = "${Partition}",
    boundary_policy_name: str = "${BoundaryPolicyName}",
    artifact_kms_key_arn: str | None = "${ArtifactKmsKeyArn}",
) -> dict[str, Any]:
    """What CloudFormation does while it creates, updates and deletes a deployment stack.

    The service role's policy; without a service role, the caller needs these too. A role
    can only be created, given a policy or a boundary when its boundary is the function
    permissions boundary, so no template can make a role stronger than that boundary.

    :param bucket: the artifact bucket.
    :param artifact_prefix: the artifacts' ``s3_prefix``.
    :param stack_prefix: what every stack (hence function, role, layer, log group and
        alarm) name starts with.
    :param account_id: the AWS account.
    :param region: the region.
    :param partition: the partition.
    :param boundary_policy_name: the managed policy made of
        :func:`function_permissions_boundary`.
    :param artifact_kms_key_arn: the bucket's KMS key (Lambda reads the code and layer
        zips with the service role's credentials); ``None`` for SSE-S3 buckets.
    """
    roles = f"arn:{partition}:iam::{account_id}:role/{stack_prefix}*"
    logs = _arn(partition, "logs", region, account_id, "log-group:")
    apigw = f"arn:{partition}:apigateway:{region}::"
    statements: list[dict[str, Any]] = [
        {"Sid": "CreateFunctionRolesUnderBoundary", "Effect": "Allow",
         "Action": ["iam:CreateRole", "iam:PutRolePolicy", "iam:PutRolePermissionsBoundary"],
         "Resource": [roles],
         "Condition": {"StringEquals": {"iam:PermissionsBoundary": boundary_policy_arn(
             partition, account_id, boundary_policy_name)}}},
        {"Sid": "ManageFunctionRoles", "Effect": "Allow",
         "Action": ["iam:DeleteRole", "iam:DeleteRolePolicy", "iam:DetachRolePolicy",
                    "iam:GetRole", "iam:GetRolePolicy", "iam:ListAttachedRolePolicies",
                    "iam:ListRolePolicies", "iam:ListRoleTags", "iam:TagRole",
                    "iam:UntagRole", "iam:UpdateRole", "iam:UpdateRoleDescription"],
         "Resource": [roles]},
        {"Sid": "PassFunctionRoles", "Effect": "Allow", "Action": ["iam:PassRole"],
         "Resource": [roles],
         "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}},
        {"Sid": "ManageFunctions", "Effect": "Allow", "Action": list(FUNCTION_ACTIONS),
         "Resource": [_arn(partition, "lambda", region, account_id,
                           f"function:{stack_prefix}*")]},
        {"Sid": "ManageLayers", "Effect": "Allow",
         "Action": ["lambda:PublishLayerVersion", "lambda:DeleteLayerVersion",
                    "lambda:GetLayerVersion"],
         "Resource": [_arn(partition, "lambda", region, account_id, f"layer:{stack_prefix}*"),
                      _arn(partition, "lambda", region, account_id,
                           f"layer:{stack_prefix}*:*")]},
        {"Sid": "ReadArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"arn:{partition}:s3:::{bucket}/{artifact_prefix}/*"]},
    ]
    if artifact_kms_key_arn is not None:
        statements.append({"Sid": "DecryptArtifacts", "Effect": "Allow",
                           "Action": ["kms:Decrypt"], "Resource": [artifact_kms_key_arn]})
    statements += [
        {"Sid": "ManageLogGroups", "Effect": "Allow", "Action": list(LOG_GROUP_ACTIONS),
         "Resource": [f"{logs}/aws/lambda/{stack_prefix}*",
                      f"{logs}/aws/apigateway/{stack_prefix}*"]},
        {"Sid": "ListLogGroups", "Effect": "Allow", "Action": ["logs:DescribeLogGroups"],
         "Resource": [f"{logs}*"]},
        {"Sid": "ListLogResourcePolicies", "Effect": "Allow",
         "Action": ["logs:DescribeResourcePolicies"], "Resource": "*"},
        {"Sid": "ManageAlarms", "Effect": "Allow", "Action": list(ALARM_ACTIONS),
         "Resource": [_arn(partition, "cloudwatch", region, account_id,
                           f"alarm:{stack_prefix}*")]},
        {"Sid": "ManageRestApis", "Effect": "Allow",
         "Action": ["apigateway:GET", "apigateway:POST", "apigateway:PUT",
                    "apigateway:PATCH", "apigateway:DELETE"],
         "Resource": [f"{apigw}/restapis", f"{apigw}/restapis/*", f"{apigw}/apikeys",
                      f"{apigw}/apikeys/*", f"{apigw}/usageplans", f"{apigw}/usageplans/*",
                      f"{apigw}/tags/*"]},
        {"Sid": "ManageHttpApis", "Effect": "Allow",
         "Action": ["apigateway:GET", "apigateway:POST", "apigateway:PUT",
                    "apigateway:PATCH", "apigateway:DELETE", "apigateway:TagResource",
                    "apigateway:UntagResource"],
         "Resource": [f"{apigw}/apis", f"{apigw}/apis/*"]},
    ]
    return {"Version": _VERSION, "Statement": statements}


#: Statements whose ``Resource`` is ``"*"``: their actions support no resource-level
#: permission (Service Authorization Reference), each argued in ``docs/iam.md``.
UNSCOPED_STATEMENTS = {"ListLogResourcePolicies": ("logs:DescribeResourcePolicies",)}


def cloudformation_service_role_trust_policy() -> dict[str, Any]:
    """The trust policy of the service role: CloudFormation may assume it.

    No condition key: the CloudFormation service role page documents none for stack
    service roles (``aws:SourceAccount``/``aws:SourceArn`` are documented for the
    execution roles of registry extensions and hooks, whose principal is another one).
    A role can only be used with a stack by someone allowed to pass it
    (``iam:PassRole``) in the role's own account.
    """
    return {"Version": _VERSION, "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "cloudformation.amazonaws.com"},
        "Action": "sts:AssumeRole"}]}


def function_permissions_boundary(
    *,
    bucket: str = "${Bucket}",
    model_prefix: str = "${ModelPrefix}",
    artifact_prefix: str = "${ArtifactPrefix}",
    stack_prefix: str = "${StackPrefix}",
    account_id: str = "${AccountId}",
    region: str = "${Region}",
    partition: str = "${Partition}",
    artifact_kms_key_arn: str | None = "${ArtifactKmsKeyArn}",
) -> dict[str, Any]:
    """The permissions boundary of every function role: the most it may ever do.

    Create it once as a managed policy (name: the service role policy's
    ``boundary_policy_name``) and pass its ARN as ``permissions_boundary_arn``; the
    service role can create roles only with it, so even a template that grants a role
    ``*:*`` yields a role that can only read the models and artifacts, write the
    functions' logs and decrypt with the artifact key.

    :param bucket: the bucket of the models and artifacts.
    :param model_prefix: the models' key prefix.
    :param artifact_prefix: the artifacts' ``s3_prefix``.
    :param stack_prefix: what every stack (hence function) name starts with.
    :param account_id: the account.
    :param region: the region.
    :param partition: the partition.
    :param artifact_kms_key_arn: the bucket's KMS key; ``None`` for SSE-S3 buckets.
    """
    s3 = f"arn:{partition}:s3:::{bucket}"
    statements: list[dict[str, Any]] = [
        {"Sid": "ReadModelsAndArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{s3}/{model_prefix}*", f"{s3}/{artifact_prefix}/*"]},
        {"Sid": "WriteFunctionLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": [_arn(partition, "logs", region, account_id,
                           f"log-group:/aws/lambda/{stack_prefix}*:*")]},
    ]
    if artifact_kms_key_arn is not None:
        statements.append({"Sid": "DecryptArtifacts", "Effect": "Allow",
                           "Action": ["kms:Decrypt"], "Resource": [artifact_kms_key_arn]})
    return {"Version": _VERSION, "Statement": statements}
