"""Uploaded artifacts are encrypted at rest and carry the digest prepare recorded; no
secret (the API key's value, the connection's secret key) shows in what tdv-airflow
returns or logs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any

import boto3
import pytest

from tdv_airflow import UserAwsAuth
from tdv_airflow.core import stacks
from tdv_airflow.endpoint.client import api_key_value, call_endpoint
from tdv_airflow.endpoint.verify import EndpointAuthenticator
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.local.process import invoke_deployed
from testkit.deployed import DeployedStack, deploy_stack, serving
from testkit.models import make_deploy, put_model

#: prepare's key of each artifact kind.
KEYS = {"layer": "s3_layer_key", "prepro_fn": "s3_prepro_fn_location",
        "lambda_code": "s3_lbd_key", "template": "s3_template_key"}
#: A distinctive secret key: the emulator accepts any credentials.
SECRET = "tdv-sEcReT-0123456789-abcdefghijklmnopqr"


def integrity_problems(s3: Any, bucket: str, key: str, sha256_hex: str,
                       encryption: tuple[str, str | None] = ("AES256", None)) -> list[str]:
    """What is wrong with one stored artifact (empty when nothing is); ``encryption``:
    the algorithm and KMS key it must be encrypted with."""
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    problems = []
    if (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) != encryption:
        problems.append(f"{key}: ServerSideEncryption is {head.get('ServerSideEncryption')} "
                        f"with the key {head.get('SSEKMSKeyId')}, not {encryption}")
    stored = head.get("ChecksumSHA256")
    if not stored or base64.b64decode(stored).hex() != sha256_hex:
        problems.append(f"{key}: ChecksumSHA256 {stored} is not the recorded {sha256_hex}")
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if hashlib.sha256(body).hexdigest() != sha256_hex:
        problems.append(f"{key}: its bytes do not hash to the recorded digest")
    return problems


def test_artifacts_are_encrypted_and_carry_the_recorded_digest(aws: LocalAws, s3: Any,
                                                               bucket: str) -> None:
    put_model(s3, bucket)
    auth = UserAwsAuth("testing", "testing", endpoint_url=aws.endpoint_url)
    response = make_deploy(auth, bucket, "tdv-integrity").prepare_deployment()
    checked = {kind: integrity_problems(s3, bucket, response[key], response["sha256"][kind])
               for kind, key in KEYS.items()}
    assert checked == {kind: [] for kind in KEYS}


def test_the_integrity_check_can_fail(aws: LocalAws, s3: Any, bucket: str) -> None:
    """An object without SSE or checksum, or with other bytes, is reported."""
    data = b"not what was recorded"
    s3.put_object(Bucket=bucket, Key="tdv-airflow/x/plain", Body=data)
    problems = integrity_problems(s3, bucket, "tdv-airflow/x/plain",
                                  hashlib.sha256(data).hexdigest())
    assert any("ServerSideEncryption" in p for p in problems)
    assert any("ChecksumSHA256" in p for p in problems)
    digest = hashlib.sha256(b"other").digest()
    s3.put_object(Bucket=bucket, Key="tdv-airflow/x/sse", Body=b"other",
                  ServerSideEncryption="AES256", ChecksumAlgorithm="SHA256",
                  ChecksumSHA256=base64.b64encode(digest).decode())
    problems = integrity_problems(s3, bucket, "tdv-airflow/x/sse",
                                  hashlib.sha256(data).hexdigest())
    assert len(problems) == 2
    assert base64.b64encode(digest).decode() in problems[0] and "bytes" in problems[1]


def test_no_secret_in_results_outputs_or_logs(aws: LocalAws, s3: Any, bucket: str,
                                              tmp_path: Any,
                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="tdv_airflow")
    caplog.set_level(logging.INFO)
    deployed = deploy_stack(aws.endpoint_url, bucket, "tdv-secrets", endpoint_auth="api_key",
                            credentials=("AKIATDVSECRETTEST000", SECRET))
    prepared, created, endpoint = deployed.prepared, deployed.created, deployed.endpoint
    clients = deployed.clients
    stack = stacks.describe(clients.cloudformation, "tdv-secrets")
    assert stack is not None
    key = api_key_value(clients, stack)
    assert len(key) >= 20
    with serving(clients, "tdv-secrets", tmp_path) as server:
        url = f"{server.base_url}/predict"
        answered = call_endpoint(url, {"rows": [[1, 2]]}, "api_key", api_key=key)
        refused = call_endpoint(url, {"rows": [[1, 2]]}, "api_key", api_key="x" * 40)
        authenticator = EndpointAuthenticator.for_stack(clients, "tdv-secrets")
    assert (answered.status, refused.status) == (200, 403)
    shown = {"prepare": prepared, "create": created, "endpoint": endpoint,
             "stack": stack, "responses": [answered.body.decode(), refused.body.decode(),
                                           dict(answered.headers), dict(refused.headers)],
             "authenticator": repr(authenticator), "auth": repr(deployed.auth)}
    text = json.dumps(shown, default=str)
    logs = caplog.text
    assert endpoint["outputs"]["ApiKeyId"]  # the id is shown, the value never
    for secret in (key, SECRET):
        assert secret not in text
        assert secret not in logs
    assert "x" * 40 not in logs  # nor a wrong key someone sent


def test_a_bucket_encrypted_with_kms_works_end_to_end(aws: LocalAws, tmp_path: Any) -> None:
    """A bucket whose default encryption is SSE-KMS with a customer managed key (named by
    its alias): uploads follow it, the function's role may decrypt with that key only
    (through S3), and the deployed function reads its artifacts and answers."""
    session = boto3.Session("testing", "testing", region_name="us-east-1")
    kms = session.client("kms", endpoint_url=aws.endpoint_url)
    s3 = session.client("s3", endpoint_url=aws.endpoint_url)
    key_arn = kms.create_key(Description="tdv artifacts")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/tdv-artifacts", TargetKeyId=key_arn)
    bucket = "tdv-kms-bucket"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                               "KMSMasterKeyID": "alias/tdv-artifacts"},
        "BucketKeyEnabled": True}]})

    deployed = deploy_stack(aws.endpoint_url, bucket, "tdv-kms")
    prepared = deployed.prepared
    assert prepared["kms_key_arn"] == key_arn  # the alias resolved to the key's ARN
    checked = {kind: integrity_problems(s3, bucket, prepared[key], prepared["sha256"][kind],
                                        ("aws:kms", key_arn))
               for kind, key in KEYS.items()}
    assert checked == {kind: [] for kind in KEYS}

    statements = role_statements(deployed)
    decrypt = [s for s in statements if s["Action"] == "kms:Decrypt"]
    assert decrypt == [{"Sid": "DecryptArtifactsWithTheBucketKey", "Effect": "Allow",
                        "Action": "kms:Decrypt", "Resource": key_arn,
                        "Condition": {"StringEquals": {
                            "kms:ViaService": "s3.us-east-1.amazonaws.com"}}}]
    assert [s for s in statements if kms_actions(s)] == decrypt

    answer = invoke_deployed(deployed.clients, "tdv-kms", {"rows": [[1, 2], [3, 4.5]]},
                             workdir=tmp_path)
    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"]) == {"predictions": [3.0, 7.5]}


def test_a_bucket_without_kms_gives_the_role_no_kms_statement(aws: LocalAws, s3: Any,
                                                              bucket: str) -> None:
    deployed = deploy_stack(aws.endpoint_url, bucket, "tdv-no-kms")
    assert deployed.prepared["kms_key_arn"] is None
    statements = role_statements(deployed)
    assert [s.get("Sid") for s in statements] == ["ReadThisDeploymentsArtifacts",
                                                 "ReadRetainedVersionsArtifacts",
                                                 "WriteOwnLogGroup"]
    assert not any(kms_actions(s) for s in statements)


def kms_actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"] if isinstance(statement["Action"], list) \
        else [statement["Action"]]
    return [a for a in actions if a.startswith("kms:")]


def role_statements(deployed: DeployedStack) -> list[dict[str, Any]]:
    """The statements of every inline policy of the function's role."""
    cfn = deployed.session.client("cloudformation", endpoint_url=deployed.auth.endpoint_url)
    iam = deployed.session.client("iam", endpoint_url=deployed.auth.endpoint_url)
    role = next(r["PhysicalResourceId"] for r in
                cfn.describe_stack_resources(StackName=deployed.stack_name)["StackResources"]
                if r["LogicalResourceId"] == "FunctionRole")
    statements: list[dict[str, Any]] = []
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        statements += document["Statement"]
    return statements
