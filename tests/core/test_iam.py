"""The published IAM policy is enough, and every statement of it is needed.

A dedicated moto server runs with ``INITIAL_NO_AUTH_ACTION_COUNT=3``: its first three
actions (by the emulator's root credentials) create an administrator; after them moto
enforces IAM, so every request must be signed by an IAM user whose policies allow it.
The administrator sets up a bucket, a model, a CloudFormation service role and an IAM
user holding exactly :func:`tdv_airflow.core.iam.airflow_identity_policy`; the user then
prepares, creates (with ``role_arn``) and checks the stack.

What moto 5.2 can check, and so what these tests prove (``docs/iam.md`` says the same):

- S3: actions and resources (bucket and object ARNs). moto names HeadBucket
  ``s3:HeadBucket`` where AWS evaluates ``s3:ListBucket``: the policy given to moto
  carries both.
- CloudFormation, IAM, Logs: actions only; moto evaluates them against Resource ``*``,
  so the policy given to moto has its non-S3 resources widened to ``*``.
- Not checkable: Lambda and API Gateway reads (moto's server refuses the signature of
  every body-less REST request, e.g. ``lambda:GetFunction``, ``apigateway:GET``),
  ``iam:PassRole`` (moto's CloudFormation never checks it), condition keys, and anything
  CloudFormation does itself (moto creates the resources without any IAM check, so the
  service role's policy is not exercised). Those statements are skipped below, by name.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tdv_airflow import UserAwsAuth
from tdv_airflow.core import stacks
from tdv_airflow.core.iam import (
    airflow_identity_policy,
    cloudformation_service_role_policy,
    cloudformation_service_role_trust_policy,
)
from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, LocalAws
from testkit.models import MODEL_KEY, REGION, access_denied, make_deploy, put_model

ACCOUNT = "123456789012"
SERVICE_ROLE = "tdv-cfn-deployer"
#: Statements moto cannot check, and why (see the module doc).
MOTO_CANNOT_CHECK = {
    "PassServiceRole": "moto's CloudFormation never checks iam:PassRole for RoleARN",
    "ReadDeployedFunctions": "moto's server refuses the signature of body-less REST "
                             "requests (lambda:GetFunction)",
    "ReadDeployedLayers": "moto's server refuses the signature of body-less REST requests "
                          "(lambda:GetLayerVersion)",
    "ReadApiKeys": "moto's server refuses the signature of body-less REST requests "
                   "(apigateway:GET)",
}
#: The step whose call needs each statement first.
FIRST_NEEDED_BY = {"FindArtifactBucket": "prepare", "ReadModels": "prepare",
                   "ReadArtifacts": "prepare", "WriteArtifacts": "prepare",
                   "ReadDeploymentStacks": "create", "ChangeDeploymentStacks": "create"}
_serial = itertools.count()


def for_moto(policy: dict[str, Any]) -> dict[str, Any]:
    """The policy as moto can evaluate it (see the module doc); nothing is granted that
    the policy does not grant on AWS, except resources moto cannot tell apart."""
    adapted = copy.deepcopy(policy)
    for statement in adapted["Statement"]:
        actions = statement["Action"]
        if "s3:ListBucket" in actions:
            actions.append("s3:HeadBucket")
        if not all(a.startswith("s3:") for a in actions):
            statement["Resource"] = "*"
        statement.pop("Condition", None)
    return adapted


@dataclass
class IamAws:
    aws: LocalAws
    admin: Any  # boto3 Session of the administrator


@pytest.fixture(scope="module")
def iam_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamAws]:
    """A moto server that enforces IAM after its first 3 actions, and an administrator."""
    import boto3

    log = tmp_path_factory.mktemp("moto-iam") / "moto.log"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "3")
        aws = LocalAws(log_path=log).start()
    try:
        root = boto3.Session(FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, region_name=REGION)
        iam = root.client("iam", endpoint_url=aws.endpoint_url)
        iam.create_user(UserName="admin")  # action 1
        iam.put_user_policy(UserName="admin", PolicyName="admin", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "*", "Resource": "*"}]}))  # action 2
        key = iam.create_access_key(UserName="admin")["AccessKey"]  # action 3
        admin = boto3.Session(key["AccessKeyId"], key["SecretAccessKey"], region_name=REGION)
        yield IamAws(aws, admin)
    finally:
        aws.stop()


@dataclass
class Identity:
    auth: UserAwsAuth
    bucket: str
    stack_name: str
    role_arn: str


def identity_with(env: IamAws, drop: str | None = None) -> Identity:
    """A fresh bucket, model, service role and user holding the policy (minus ``drop``)."""
    n = next(_serial)
    bucket, user, stack_name = f"tdv-iam-{n}", f"airflow-{n}", f"tdv-iam-{n}"
    endpoint = env.aws.endpoint_url
    s3 = env.admin.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=bucket)
    put_model(s3, bucket, raw_pickle=True)
    iam = env.admin.client("iam", endpoint_url=endpoint)
    role = f"{SERVICE_ROLE}-{n}"
    role_arn = iam.create_role(
        RoleName=role, AssumeRolePolicyDocument=json.dumps(
            cloudformation_service_role_trust_policy(ACCOUNT)))["Role"]["Arn"]
    iam.put_role_policy(RoleName=role, PolicyName="deploy", PolicyDocument=json.dumps(
        cloudformation_service_role_policy(bucket=bucket, artifact_prefix="tdv-airflow",
                                           stack_prefix="tdv-", account_id=ACCOUNT,
                                           region=REGION, partition="aws")))
    policy = airflow_identity_policy(
        bucket=bucket, model_prefix="models/", artifact_prefix="tdv-airflow",
        stack_prefix="tdv-", account_id=ACCOUNT, region=REGION, partition="aws",
        service_role_name=role)
    if drop is not None:
        policy["Statement"] = [s for s in policy["Statement"] if s["Sid"] != drop]
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="tdv-airflow",
                        PolicyDocument=json.dumps(for_moto(policy)))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    return Identity(UserAwsAuth(key["AccessKeyId"], key["SecretAccessKey"],
                                endpoint_url=endpoint), bucket, stack_name, role_arn)


def run_steps(identity: Identity) -> dict[str, Any]:
    """Prepare, create and check the stack as ``identity``; the step that failed, if any."""
    deploy = make_deploy(identity.auth, identity.bucket, identity.stack_name,
                         role_arn=identity.role_arn)
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
    except Exception as exc:
        return {"failed": step, "error": exc, **done}
    return {"failed": None, **done}


def test_the_policy_is_enough_for_prepare_create_and_status(iam_aws: IamAws) -> None:
    identity = identity_with(iam_aws)
    result = run_steps(identity)
    assert result["failed"] is None, result.get("error")
    assert result["status"] == "CREATE_COMPLETE"
    cfn = iam_aws.admin.client("cloudformation", endpoint_url=iam_aws.aws.endpoint_url)
    stack = cfn.describe_stacks(StackName=identity.stack_name)["Stacks"][0]
    assert stack["RoleARN"] == identity.role_arn


def test_iam_is_really_enforced(iam_aws: IamAws) -> None:
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


@pytest.mark.parametrize("sid", [s["Sid"] for s in airflow_identity_policy()["Statement"]])
def test_without_each_statement_a_step_is_denied(iam_aws: IamAws, sid: str) -> None:
    if sid in MOTO_CANNOT_CHECK:
        pytest.skip(f"{sid}: {MOTO_CANNOT_CHECK[sid]}")
    result = run_steps(identity_with(iam_aws, drop=sid))
    assert result["failed"] == FIRST_NEEDED_BY[sid], result
    assert access_denied(result["error"]), repr(result["error"])


def test_every_statement_is_accounted_for() -> None:
    sids = [s["Sid"] for s in airflow_identity_policy()["Statement"]]
    assert len(sids) == len(set(sids))
    assert set(sids) == set(FIRST_NEEDED_BY) | set(MOTO_CANNOT_CHECK)
    assert "PassServiceRole" not in {
        s["Sid"] for s in airflow_identity_policy(service_role_name=None)["Statement"]}


def test_moto_still_cannot_check_rest_reads(iam_aws: IamAws) -> None:
    """Keeps MOTO_CANNOT_CHECK honest: when moto verifies body-less REST requests, this
    fails, and the Lambda and API Gateway statements can be tested too."""
    from botocore.exceptions import ClientError

    for service, call in (("lambda", "list_functions"), ("apigateway", "get_rest_apis")):
        client = iam_aws.admin.client(service, endpoint_url=iam_aws.aws.endpoint_url)
        with pytest.raises(ClientError, match="SignatureDoesNotMatch"):
            getattr(client, call)()
