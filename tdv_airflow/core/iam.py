"""The IAM policies tdv-airflow needs.

Policies (published in ``docs/iam.md`` and as JSON next to it; a test keeps the files
equal to what these functions return with their placeholder defaults):

- :func:`airflow_identity_policy`: what the identity behind the Airflow connection (or
  the ``Deploy`` credentials) needs for the calls tdv-airflow makes itself;
- :func:`cloudformation_service_role_policy`: what CloudFormation needs to create the
  stack's resources: the policy of the service role (``role_arn``), or, without one,
  further permissions of the caller, since CloudFormation then acts with them;
- :func:`cloudformation_service_role_trust_policy`: who may assume the service role.

Every argument defaults to a ``${Placeholder}``, so the documents can also be pasted into
a CloudFormation ``Fn::Sub``. The hardening checks of the stack template live with the
tests, in ``testkit/template_checks.py``.
"""

from __future__ import annotations

from typing import Any

_VERSION = "2012-10-17"


def _arn(partition: str, service: str, region: str, account_id: str, resource: str) -> str:
    return f"arn:{partition}:{service}:{region}:{account_id}:{resource}"


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
) -> dict[str, Any]:
    """The policy of the identity that runs prepare, create, the status checks, the
    local run and the API key lookup.

    :param bucket: the bucket holding the models and the artifacts.
    :param model_prefix: the key prefix of the models (e.g. ``models/``; ``""`` for any).
    :param artifact_prefix: the ``s3_prefix`` of the artifacts (default ``tdv-airflow``).
    :param stack_prefix: what every stack name starts with (e.g. ``tdv-``).
    :param account_id: the AWS account.
    :param region: the region of the stacks.
    :param partition: ``aws``, ``aws-cn`` or ``aws-us-gov``.
    :param service_role_name: the CloudFormation service role passed as ``role_arn``;
        ``None`` when no service role is used (no ``iam:PassRole`` statement).
    """
    s3 = f"arn:{partition}:s3:::{bucket}"
    stacks = _arn(partition, "cloudformation", region, account_id, f"stack/{stack_prefix}*/*")
    statements: list[dict[str, Any]] = [
        {"Sid": "FindArtifactBucket", "Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [s3]},
        {"Sid": "ReadModels", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{s3}/{model_prefix}*"]},
        {"Sid": "ReadArtifacts", "Effect": "Allow", "Action": ["s3:GetObject"],
         "Resource": [f"{s3}/{artifact_prefix}/*"]},
        {"Sid": "WriteArtifacts", "Effect": "Allow", "Action": ["s3:PutObject"],
         "Resource": [f"{s3}/{artifact_prefix}/*"]},
        {"Sid": "ReadDeploymentStacks", "Effect": "Allow",
         "Action": ["cloudformation:DescribeStacks", "cloudformation:DescribeStackEvents",
                    "cloudformation:DescribeStackResources"],
         "Resource": [stacks]},
        {"Sid": "ChangeDeploymentStacks", "Effect": "Allow",
         "Action": ["cloudformation:CreateStack", "cloudformation:UpdateStack",
                    "cloudformation:DeleteStack", "cloudformation:TagResource"],
         "Resource": [stacks]},
    ]
    if service_role_name is not None:
        statements.append(
            {"Sid": "PassServiceRole", "Effect": "Allow", "Action": ["iam:PassRole"],
             "Resource": [f"arn:{partition}:iam::{account_id}:role/{service_role_name}"],
             "Condition": {"StringEquals": {
                 "iam:PassedToService": "cloudformation.amazonaws.com"}}})
    statements += [
        {"Sid": "ReadDeployedFunctions", "Effect": "Allow",
         "Action": ["lambda:GetFunction", "lambda:GetFunctionConfiguration"],
         "Resource": [_arn(partition, "lambda", region, account_id,
                           f"function:{stack_prefix}*")]},
        {"Sid": "ReadDeployedLayers", "Effect": "Allow", "Action": ["lambda:GetLayerVersion"],
         "Resource": [_arn(partition, "lambda", region, account_id,
                           f"layer:{stack_prefix}*:*")]},
        {"Sid": "ReadApiKeys", "Effect": "Allow", "Action": ["apigateway:GET"],
         "Resource": [f"arn:{partition}:apigateway:{region}::/apikeys/*"]},
    ]
    return {"Version": _VERSION, "Statement": statements}


def cloudformation_service_role_policy(
    *,
    bucket: str = "${Bucket}",
    artifact_prefix: str = "${ArtifactPrefix}",
    stack_prefix: str = "${StackPrefix}",
    account_id: str = "${AccountId}",
    region: str = "${Region}",
    partition: str = "${Partition}",
) -> dict[str, Any]:
    """What CloudFormation does while it creates, updates and deletes a deployment stack.

    The service role's policy; without a service role, the caller needs these too.

    :param bucket: the artifact bucket.
    :param artifact_prefix: the artifacts' ``s3_prefix``.
    :param stack_prefix: what every stack (hence function, role, layer and log group)
        name starts with.
    :param account_id: the AWS account.
    :param region: the region.
    :param partition: the partition.
    """
    roles = f"arn:{partition}:iam::{account_id}:role/{stack_prefix}*"
    logs = _arn(partition, "logs", region, account_id, "log-group:")
    apigw = f"arn:{partition}:apigateway:{region}::"
    return {"Version": _VERSION, "Statement": [
        {"Sid": "ManageFunctionRoles", "Effect": "Allow",
         "Action": ["iam:CreateRole", "iam:DeleteRole", "iam:GetRole", "iam:UpdateRole",
                    "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:GetRolePolicy",
                    "iam:ListRolePolicies", "iam:ListAttachedRolePolicies", "iam:TagRole",
                    "iam:UntagRole"],
         "Resource": [roles]},
        {"Sid": "PassFunctionRoles", "Effect": "Allow", "Action": ["iam:PassRole"],
         "Resource": [roles],
         "Condition": {"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}}},
        {"Sid": "ManageFunctions", "Effect": "Allow",
         "Action": ["lambda:CreateFunction", "lambda:DeleteFunction", "lambda:GetFunction",
                    "lambda:GetFunctionConfiguration", "lambda:UpdateFunctionCode",
                    "lambda:UpdateFunctionConfiguration", "lambda:PutFunctionConcurrency",
                    "lambda:DeleteFunctionConcurrency", "lambda:AddPermission",
                    "lambda:RemovePermission", "lambda:GetPolicy", "lambda:TagResource",
                    "lambda:UntagResource", "lambda:ListTags"],
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
        {"Sid": "ManageLogGroups", "Effect": "Allow",
         "Action": ["logs:CreateLogGroup", "logs:DeleteLogGroup", "logs:PutRetentionPolicy",
                    "logs:DeleteRetentionPolicy", "logs:TagResource", "logs:UntagResource",
                    "logs:ListTagsForResource"],
         "Resource": [f"{logs}/aws/lambda/{stack_prefix}*",
                      f"{logs}/aws/apigateway/{stack_prefix}*"]},
        {"Sid": "ListLogGroups", "Effect": "Allow", "Action": ["logs:DescribeLogGroups"],
         "Resource": [f"{logs}*"]},
        {"Sid": "ManageRestApis", "Effect": "Allow",
         "Action": ["apigateway:GET", "apigateway:POST", "apigateway:PUT",
                    "apigateway:PATCH", "apigateway:DELETE"],
         "Resource": [f"{apigw}/restapis", f"{apigw}/restapis/*", f"{apigw}/apikeys",
                      f"{apigw}/apikeys/*", f"{apigw}/usageplans", f"{apigw}/usageplans/*",
                      f"{apigw}/tags/*"]},
    ]}


def cloudformation_service_role_trust_policy(account_id: str = "${AccountId}"
                                             ) -> dict[str, Any]:
    """The trust policy of the service role: CloudFormation, for this account only.

    :param account_id: the AWS account.
    """
    return {"Version": _VERSION, "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "cloudformation.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": account_id}}}]}
