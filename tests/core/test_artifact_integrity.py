"""Uploaded artifacts are encrypted at rest and carry the digest prepare recorded; no
secret (the API key's value, the connection's secret key) shows in what tdv-airflow
returns or logs."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from typing import Any

import pytest

from tdv_airflow import UserAwsAuth
from tdv_airflow.core import stacks
from tdv_airflow.endpoint.client import api_key_value, call_endpoint
from tdv_airflow.endpoint.verify import EndpointAuthenticator
from tdv_airflow.local.aws import LocalAws
from testkit.deployed import deploy_stack, serving
from testkit.models import make_deploy, put_model

#: prepare's key of each artifact kind.
KEYS = {"layer": "s3_layer_key", "prepro_fn": "s3_prepro_fn_location",
        "lambda_code": "s3_lbd_key", "template": "s3_template_key"}
#: A distinctive secret key: the emulator accepts any credentials.
SECRET = "tdv-sEcReT-0123456789-abcdefghijklmnopqr"


def integrity_problems(s3: Any, bucket: str, key: str, sha256_hex: str) -> list[str]:
    """What is wrong with one stored artifact (empty when nothing is)."""
    head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    problems = []
    if head.get("ServerSideEncryption") != "AES256":
        problems.append(f"{key}: ServerSideEncryption is {head.get('ServerSideEncryption')}")
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
