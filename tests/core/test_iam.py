"""The published IAM policies are enough, every statement of them is needed, and a template
that tries to make an administrator role is refused under them.

A dedicated moto server runs with ``INITIAL_NO_AUTH_ACTION_COUNT=3``
(:func:`testkit.iam_moto.start_enforcing`): its first three actions (by the emulator's
root credentials) create an administrator; after them moto enforces IAM, so every request
must be signed by an IAM user whose policies allow it. The administrator sets up a
bucket, a model, the function permissions boundary (a managed policy), a CloudFormation
service role holding :func:`~tdv_airflow.core.iam.cloudformation_service_role_policy` and
an IAM user holding exactly :func:`~tdv_airflow.core.iam.airflow_identity_policy`; the
user then prepares, creates (with ``role_arn`` and the boundary) and checks the stack.

What the emulator checks, and so what these tests prove (``docs/iam.md`` says the same):

- S3: actions and resources (bucket and object ARNs). moto names HeadBucket
  ``s3:HeadBucket`` where AWS evaluates ``s3:ListBucket``: the policy given to moto
  carries both.
- CloudFormation, IAM, Logs: actions only; moto evaluates them against Resource ``*``,
  so the policy given to moto has its non-S3 resources widened to ``*``.
- The caller's ``cloudformation:TemplateUrl`` and ``cloudformation:RoleArn`` conditions on
  CreateStack/UpdateStack (fidelity fix :mod:`tdv_airflow.local.fix_stack_conditions`).
- The service role when a stack creates a role: ``iam:CreateRole``/``PutRolePolicy``/
  ``AttachRolePolicy`` with ``iam:PermissionsBoundary`` (fidelity fix
  :mod:`tdv_airflow.local.fix_service_role`).
- Lambda: actions, resources (the function, version, alias or layer version ARN a
  request addresses) and ``lambda:Principal``, with the signature of body-less requests
  verified (fidelity fix :mod:`tdv_airflow.local.fix_lambda_authorization`): the calls
  of a rollout (:data:`testkit.iam_moto.ROLLOUT_CALLS`) are allowed on the deployment's
  function and refused on another one, and each of their statements is needed.
- CloudWatch: the action only (moto names it ``monitoring:DescribeAlarms`` and evaluates
  it against ``*``: the policy given to moto carries both names, its resource widened).
- Not checkable: API Gateway reads (moto's server refuses the signature of every
  body-less REST request but Lambda's, e.g. ``apigateway:GET``), ``iam:PassRole`` (moto's
  CloudFormation never checks it), KMS use through S3, ``cloudformation:TagResource``,
  the other condition keys, the rest of what CloudFormation does with the service role,
  and what a permissions boundary then forbids the role itself. Those statements are
  skipped below, by name.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow import UserAwsAuth
from tdv_airflow.core import stacks
from tdv_airflow.core.iam import (
    BOUNDARY_PARAMETER,
    airflow_identity_policy,
    boundary_policy_arn,
    cloudformation_service_role_policy,
    cloudformation_service_role_trust_policy,
    function_permissions_boundary,
)
from testkit.iam_moto import ACCOUNT, ROLLOUT_CALLS, IamMoto, start_enforcing
from testkit.models import MODEL_KEY, REGION, access_denied, make_deploy, put_model

ROOT = Path(__file__).resolve().parents[2]
SERVICE_ROLE = "tdv-cfn-deployer"
KMS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/00000000-0000-0000-0000-000000000000"
#: Statements moto cannot check, and why (see the module doc).
MOTO_CANNOT_CHECK = {
    "PassServiceRole": "moto's CloudFormation never checks iam:PassRole for RoleARN",
    "ReadApiKeys": "moto's server refuses the signature of body-less REST requests "
                   "(apigateway:GET)",
    "UseArtifactKey": "moto's S3 never asks whether the caller may use the bucket's KMS key "
                      "(test_moto_still_cannot_check_kms_use)",
    "TagDeploymentStacks": "moto never authorises cloudformation:TagResource",
}
#: The step whose call needs each statement first.
FIRST_NEEDED_BY = {"FindArtifactBucket": "prepare", "ReadModels": "prepare",
                   "ReadArtifacts": "prepare", "WriteArtifacts": "prepare",
                   "ReadDeploymentStacks": "create", "ChangeDeploymentStacks": "create",
                   "DeleteDeploymentStacks": "delete"}
#: Statements of a function URL on the alias live (checked in test_iam_front_doors.py).
URL_SIDS = ("ManageLiveAliasUrl", "OpenLiveAliasUrl", "CloseLiveAliasUrl")
#: Statements the rollout's calls need (checked on a deployed function, not by a step).
#: Statements of provisioned concurrency on the alias live (test_iam_concurrency.py).
CONCURRENCY_SIDS = ("ProvisionLiveAlias",)
ROLLOUT_SIDS = sorted({c.sid for c in ROLLOUT_CALLS} | set(URL_SIDS) | set(CONCURRENCY_SIDS))
#: Statements of ending incomplete multipart uploads (test_iam_multipart.py): prepare's
#: small artifacts go in one PutObject, and the cleanup is best effort.
MULTIPART_SIDS = ("EndIncompleteUploads", "ListIncompleteUploads")
_serial = itertools.count()


def for_moto(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as moto can evaluate it (see the module doc); nothing is granted that
    the policy does not grant on AWS, except resources moto cannot tell apart. Conditions
    stay: the fidelity fixes evaluate CloudFormation's, moto ignores the others."""
    adapted = copy.deepcopy(policy)
    for statement in adapted["Statement"]:
        actions = statement["Action"]
        if "s3:ListBucket" in actions:
            actions.append("s3:HeadBucket")
        actions += [a.replace("cloudwatch:", "monitoring:", 1) for a in actions
                    if a.startswith("cloudwatch:")]
        if not all(a.startswith(("s3:", "lambda:")) for a in actions):
            statement["Resource"] = "*"
    return adapted


@pytest.fixture(scope="module")
def iam_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamMoto]:
    """A moto server that enforces IAM after its first 3 actions, and an administrator."""
    moto = start_enforcing(tmp_path_factory.mktemp("moto-iam") / "moto.log")
    try:
        yield moto
    finally:
        moto.aws.stop()


@dataclass
class Identity:
    auth: UserAwsAuth
    bucket: str
    stack_name: str
    role_arn: str
    boundary_arn: str


def published_policy(bucket: str, role: str, drop: str | None = None) -> dict[str, Any]:
    """The identity policy for ``bucket`` and the service role ``role`` (minus ``drop``)."""
    policy = airflow_identity_policy(
        bucket=bucket, model_prefix="models/", artifact_prefix="tdv-airflow",
        stack_prefix="tdv-", account_id=ACCOUNT, region=REGION, partition="aws",
        service_role_name=role, artifact_kms_key_arn=KMS_KEY)
    if drop is not None:
        policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != drop]
    return policy


def identity_with(env: IamMoto, drop: str | None = None) -> Identity:
    """A fresh bucket, model, boundary, service role and user holding the policy (minus
    ``drop``)."""
    n = next(_serial)
    bucket, user, stack_name = f"tdv-iam-{n}", f"airflow-{n}", f"tdv-iam-{n}"
    s3 = env.client("s3")
    s3.create_bucket(Bucket=bucket)
    put_model(s3, bucket, raw_pickle=True)
    iam = env.client("iam")
    boundary = f"tdv-function-boundary-{n}"
    boundary_arn = iam.create_policy(PolicyName=boundary, PolicyDocument=json.dumps(
        function_permissions_boundary(
            bucket=bucket, model_prefix="models/", artifact_prefix="tdv-airflow",
            stack_prefix="tdv-", account_id=ACCOUNT, region=REGION, partition="aws",
            artifact_kms_key_arn=KMS_KEY)))["Policy"]["Arn"]
    assert boundary_arn == boundary_policy_arn("aws", ACCOUNT, boundary)
    role = f"{SERVICE_ROLE}-{n}"
    role_arn = iam.create_role(
        RoleName=role, AssumeRolePolicyDocument=json.dumps(
            cloudformation_service_role_trust_policy()))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="deploy", PolicyDocument=json.dumps(
        cloudformation_service_role_policy(bucket=bucket, artifact_prefix="tdv-airflow",
                                           stack_prefix="tdv-", account_id=ACCOUNT,
                                           region=REGION, partition="aws",
                                           boundary_policy_name=boundary,
                                           artifact_kms_key_arn=KMS_KEY)))
    session = env.user(user, for_moto(published_policy(bucket, role, drop)))
    credentials = session.get_credentials()
    return Identity(UserAwsAuth(credentials.access_key, credentials.secret_key,
                                endpoint_url=env.aws.endpoint_url),
                    bucket, stack_name, role_arn, boundary_arn)


def run_steps(identity: Identity, delete: bool = False) -> dict[str, Any]:
    """Prepare, create and check the stack as ``identity`` (then delete it, if asked); the
    step that failed, if any."""
    deploy = make_deploy(identity.auth, identity.bucket, identity.stack_name,
                         role_arn=identity.role_arn,
                         stack_parameters={BOUNDARY_PARAMETER: identity.boundary_arn})
    step: str = "prepare"
    done: dict[str, Any] = {}
    try:
        done["prepare"] = deploy.prepare_deployment()
        step = "create"
        done["create"] = deploy.create_stack(done["prepare"], invoke_mode=1)
        step = "status"
        done["wait"] = stacks.wait_for_stack(deploy.clients.cloudformation,
                                             done["create"]["stack_id"], 0.1, 50)
        done["status"] = deploy.get_clf_stack_status()
        if delete:
            step = "delete"
            done["delete"] = stacks.delete_and_wait(deploy.clients.cloudformation,
                                                    done["create"]["stack_id"], 0.1, 50)
    except Exception as exc:
        return {"failed": step, "error": exc, **done}
    return {"failed": None, **done}


def function_role(env: IamMoto, stack_name: str) -> dict[str, Any]:
    resources = env.client("cloudformation").describe_stack_resources(
        StackName=stack_name)["StackResources"]
    name = next(r["PhysicalResourceId"] for r in resources
                if r["ResourceType"] == "AWS::IAM::Role")
    return dict(env.client("iam").get_role(RoleName=name.rsplit("/", 1)[-1])["Role"])


def test_the_policy_is_enough_for_prepare_create_and_status(iam_aws: IamMoto) -> None:
    identity = identity_with(iam_aws)
    result = run_steps(identity)
    assert result["failed"] is None, result.get("error")
    assert result["status"] == "CREATE_COMPLETE"
    cfn = iam_aws.client("cloudformation")
    stack = cfn.describe_stacks(StackName=identity.stack_name)["Stacks"][0]
    assert stack["RoleARN"] == identity.role_arn
    role = function_role(iam_aws, identity.stack_name)
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == identity.boundary_arn
    cfn_as_user = identity.auth.session(REGION).client(
        "cloudformation", endpoint_url=iam_aws.aws.endpoint_url)
    assert stacks.delete_and_wait(cfn_as_user, stack["StackId"], 0.1, 50) is None


def test_iam_is_really_enforced(iam_aws: IamMoto) -> None:
    """The same user is refused what the policy does not grant."""
    identity = identity_with(iam_aws)
    s3 = UserAwsAuth(identity.auth.aws_access_key_id, identity.auth.aws_secret_access_key
                     ).session(REGION).client("s3", endpoint_url=iam_aws.aws.endpoint_url)
    with pytest.raises(Exception) as outside:
        s3.put_object(Bucket=identity.bucket, Key="elsewhere/x", Body=b"x")
    assert access_denied(outside.value)
    with pytest.raises(Exception) as other_model:
        s3.get_object(Bucket=identity.bucket, Key=MODEL_KEY.replace("models/", "private/"))
    assert access_denied(other_model.value)
    cfn = UserAwsAuth(identity.auth.aws_access_key_id, identity.auth.aws_secret_access_key
                      ).session(REGION).client("iam", endpoint_url=iam_aws.aws.endpoint_url)
    with pytest.raises(Exception) as iam_call:
        cfn.list_users()
    assert access_denied(iam_call.value)


@pytest.mark.parametrize("sid", [s["Sid"] for s in airflow_identity_policy()["Statement"]
                                 if s["Sid"] not in (*ROLLOUT_SIDS, *MULTIPART_SIDS)])
def test_without_each_statement_a_step_is_denied(iam_aws: IamMoto, sid: str) -> None:
    if sid in MOTO_CANNOT_CHECK:
        pytest.skip(f"{sid}: {MOTO_CANNOT_CHECK[sid]}")
    result = run_steps(identity_with(iam_aws, drop=sid), delete=True)
    assert result["failed"] == FIRST_NEEDED_BY[sid], result
    assert access_denied(result["error"]), repr(result["error"])


def test_every_statement_is_accounted_for() -> None:
    sids = [s["Sid"] for s in airflow_identity_policy()["Statement"]]
    assert len(sids) == len(set(sids))
    assert set(sids) == (set(FIRST_NEEDED_BY) | set(MOTO_CANNOT_CHECK) | set(ROLLOUT_SIDS)
                         | set(MULTIPART_SIDS))
    assert not set(ROLLOUT_SIDS) & (set(FIRST_NEEDED_BY) | set(MOTO_CANNOT_CHECK))
    assert not set(MULTIPART_SIDS) & (set(FIRST_NEEDED_BY) | set(MOTO_CANNOT_CHECK)
                                      | set(ROLLOUT_SIDS))
    assert "PassServiceRole" not in {
        s["Sid"] for s in airflow_identity_policy(service_role_name=None)["Statement"]}


def test_moto_still_cannot_check_rest_reads(iam_aws: IamMoto) -> None:
    """Keeps MOTO_CANNOT_CHECK honest: when moto verifies body-less REST requests, this
    fails, and the API Gateway statement can be tested too. Lambda's are verified by the
    fidelity fix (plain moto refuses them: ``tests/local/test_fix_lambda_authorization``)."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
        iam_aws.client("apigateway").get_rest_apis()
    assert isinstance(iam_aws.client("lambda").list_functions()["Functions"], list)


def test_moto_still_cannot_check_kms_use(iam_aws: IamMoto) -> None:
    """Keeps ``UseArtifactKey`` honest: a user with no KMS permission at all uploads to and
    reads checksums from a bucket encrypted with a KMS key (AWS refuses both without
    ``kms:GenerateDataKey``/``kms:Decrypt``); when moto refuses, test the statement."""
    key = iam_aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    s3 = iam_aws.client("s3")
    s3.create_bucket(Bucket="tdv-iam-kms")
    s3.put_bucket_encryption(Bucket="tdv-iam-kms", ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {
            "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key}}]})
    user = iam_aws.user("no-kms", {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": "arn:aws:s3:::tdv-iam-kms/*"}]}).client(
        "s3", endpoint_url=iam_aws.aws.endpoint_url)
    user.put_object(Bucket="tdv-iam-kms", Key="a", Body=b"a", ChecksumAlgorithm="SHA256")
    head = user.head_object(Bucket="tdv-iam-kms", Key="a", ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms" and head["ChecksumSHA256"]


#: A template that makes an administrator: a role whose inline policy allows ``*`` on
#: ``*`` (CloudFormation names it ``<stack>-Admin-<suffix>``, inside ``role/tdv-*``).
ADMIN_ROLE_TEMPLATE = {"Resources": {"Admin": {"Type": "AWS::IAM::Role", "Properties": {
    "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
         "Action": "sts:AssumeRole"}]},
    "Policies": [{"PolicyName": "everything", "PolicyDocument": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}]}}}}


def test_an_escalating_template_is_refused_under_the_published_policy(
        iam_aws: IamMoto) -> None:
    """The identity may write templates into the artifact prefix, so the conditions on
    CreateStack alone cannot stop it: the permissions boundary the service role demands
    does."""
    identity = identity_with(iam_aws)
    prepared = run_steps(identity)
    assert prepared["failed"] is None, prepared.get("error")
    session = identity.auth.session(REGION)
    endpoint = iam_aws.aws.endpoint_url
    cfn, s3 = (session.client(s, endpoint_url=endpoint) for s in ("cloudformation", "s3"))
    body = json.dumps(ADMIN_ROLE_TEMPLATE)
    inside, outside = "tdv-airflow/template/evil/t.json", "tdv-airflow/evil/t.json"
    for key in (inside, outside):
        s3.put_object(Bucket=identity.bucket, Key=key, Body=body.encode())
    url = prepared["prepare"]["url_s3_stack_template"]
    url_of = {key: url.split("/tdv-airflow/")[0] + "/" + key for key in (inside, outside)}
    attempts = {
        "inline template": {"TemplateBody": body, "RoleARN": identity.role_arn},
        "template outside the templates' prefix": {"TemplateURL": url_of[outside],
                                                   "RoleARN": identity.role_arn},
        "no service role (the caller's own rights)": {"TemplateURL": url_of[inside]},
        "another role": {"TemplateURL": url_of[inside],
                         "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/admin"},
    }
    for what, args in attempts.items():
        with pytest.raises(Exception) as refused:
            cfn.create_stack(StackName=f"{identity.stack_name}-evil", **args,
                             Capabilities=["CAPABILITY_IAM"])
        assert access_denied(refused.value), what
    stack_id = cfn.create_stack(StackName=f"{identity.stack_name}-evil",
                                TemplateURL=url_of[inside], RoleARN=identity.role_arn,
                                Capabilities=["CAPABILITY_IAM"])["StackId"]
    stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    reasons = [e.get("ResourceStatusReason", "") for e in events
               if e["ResourceStatus"] == "CREATE_FAILED"]
    assert len(reasons) == 1 and "not authorized to perform: iam:CreateRole" in reasons[0]
    roles = [r["RoleName"] for r in iam_aws.client("iam").list_roles()["Roles"]]
    assert not [r for r in roles if "-evil-" in r]


def test_under_the_boundary_a_role_is_created_but_capped(iam_aws: IamMoto) -> None:
    """The same administrator role with the boundary is created: AWS then lets it do only
    what the boundary allows (documented; moto does not evaluate boundaries)."""
    identity = identity_with(iam_aws)
    prepared = run_steps(identity)
    assert prepared["failed"] is None, prepared.get("error")
    template: dict[str, Any] = copy.deepcopy(ADMIN_ROLE_TEMPLATE)
    template["Resources"]["Admin"]["Properties"]["PermissionsBoundary"] = identity.boundary_arn
    session = identity.auth.session(REGION)
    endpoint = iam_aws.aws.endpoint_url
    key = "tdv-airflow/template/bounded/t.json"
    session.client("s3", endpoint_url=endpoint).put_object(
        Bucket=identity.bucket, Key=key, Body=json.dumps(template).encode())
    url = prepared["prepare"]["url_s3_stack_template"].split("/tdv-airflow/")[0] + "/" + key
    cfn = session.client("cloudformation", endpoint_url=endpoint)
    cfn.create_stack(StackName=f"{identity.stack_name}-bounded", TemplateURL=url,
                     RoleARN=identity.role_arn, Capabilities=["CAPABILITY_IAM"])
    assert cfn.describe_stacks(StackName=f"{identity.stack_name}-bounded")["Stacks"][0][
        "StackStatus"] == "CREATE_COMPLETE"
    role = function_role(iam_aws, f"{identity.stack_name}-bounded")
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == identity.boundary_arn
    version = iam_aws.client("iam").get_policy(PolicyArn=identity.boundary_arn)["Policy"][
        "DefaultVersionId"]
    document = iam_aws.client("iam").get_policy_version(
        PolicyArn=identity.boundary_arn, VersionId=version)["PolicyVersion"]["Document"]
    document = json.loads(document) if isinstance(document, str) else document
    allowed = {a for s in document["Statement"] for a in s["Action"]}
    assert allowed == {"s3:GetObject", "logs:CreateLogStream", "logs:PutLogEvents",
                       "kms:Decrypt"}


def test_the_trust_policy_uses_no_undocumented_condition() -> None:
    statements = cloudformation_service_role_trust_policy()["Statement"]
    assert statements == [{"Effect": "Allow",
                           "Principal": {"Service": "cloudformation.amazonaws.com"},
                           "Action": "sts:AssumeRole"}]


def test_kms_is_granted_on_the_artifact_key_only() -> None:
    builds = (airflow_identity_policy, cloudformation_service_role_policy,
              function_permissions_boundary)
    for build in builds:
        kms = [s for s in build(artifact_kms_key_arn=KMS_KEY)["Statement"]
               if any(a.startswith("kms:") for a in s["Action"])]
        assert [s["Resource"] for s in kms] == [[KMS_KEY]]
        assert all(a.startswith("kms:") for s in kms for a in s["Action"])
        assert not [a for s in build(artifact_kms_key_arn=None)["Statement"]
                    for a in s["Action"] if a.startswith("kms:")]
    actions = {a for s in airflow_identity_policy(artifact_kms_key_arn=KMS_KEY)["Statement"]
               for a in s["Action"]}
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions
