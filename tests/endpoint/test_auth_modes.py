"""Each endpoint authentication mode, deployed on the emulator and served locally.

For every mode: the emulator's API Gateway method and the uploaded template say what the
mode asks; ``call_endpoint`` sends what the mode needs and the local stand-in of the API
(``LocalFunction`` + the local server, enforcing the mode read from the stack) accepts it,
while a request without it gets API Gateway's 403 and never reaches the function.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tdv_airflow import UserAwsAuth
from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.iam import evaluate
from tdv_airflow.endpoint.client import (
    EndpointAuthenticator,
    EndpointAuthError,
    api_key_value,
    call_endpoint,
)
from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.local.aws import LocalAws, free_port
from tdv_airflow.local.run import LocalFunction
from tdv_airflow.local.server import serve_in_thread
from testkit.models import REGION, make_deploy, put_model

BUCKET = "tdv-sec-auth-modes"
PAYLOAD = {"rows": [[1, 2, 3], [4, 5, 6]]}
EXPECTED = [6.0, 15.0]
#: endpoint_auth -> (the EndpointAuth parameter, authorizationType, apiKeyRequired)
MODES = {"iam": ("AWS_IAM", "AWS_IAM", False), "api_key": ("API_KEY", "NONE", True),
         "none": ("NONE", "NONE", False)}


@dataclass
class Served:
    mode: str
    stack_name: str
    outputs: dict[str, str]
    response: dict[str, Any]
    url: str


@dataclass
class Deployed:
    aws: LocalAws
    auth: UserAwsAuth
    clients: AwsClients
    session: Any
    served: dict[str, Served]


@pytest.fixture(scope="module")
def deployed(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Deployed]:
    """One stack per mode, each served by a local server enforcing the stack's mode."""
    local_aws.reset()
    auth = UserAwsAuth("testing", "testing", endpoint_url=local_aws.endpoint_url)
    session = auth.session(REGION)
    s3 = session.client("s3", endpoint_url=local_aws.endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    put_model(s3, BUCKET)
    clients = AwsClients.from_auth(auth, REGION)
    workdir = tmp_path_factory.mktemp("local-run")
    served: dict[str, Served] = {}
    running: list[tuple[Any, Any, LocalFunction]] = []
    try:
        for mode in MODES:
            stack_name = f"tdv-sec-{mode.replace('_', '')}"
            deploy = make_deploy(auth, BUCKET, stack_name, endpoint_auth=mode)
            response = deploy.prepare_deployment()
            result = deploy.deploy(response, 0)
            function = LocalFunction(clients, stack_name, workdir=workdir)
            server, thread = serve_in_thread(function)
            running.append((server, thread, function))
            host, port = server.server_address[:2]
            served[mode] = Served(mode, stack_name, result["outputs"], response,
                                  f"http://{host!s}:{port}/{result['outputs']['StageName']}"
                                  "/predict")
        yield Deployed(local_aws, auth, clients, session, served)
    finally:
        for server, thread, function in running:
            server.shutdown()
            server.server_close()
            function.close()
            thread.join(5)


def predict_method(deployed: Deployed, outputs: dict[str, str]) -> dict[str, Any]:
    apigw = deployed.session.client("apigateway", endpoint_url=deployed.aws.endpoint_url)
    api = outputs["ApiId"]
    resource = next(r for r in apigw.get_resources(restApiId=api)["items"]
                    if r.get("path") == "/predict")
    method: dict[str, Any] = apigw.get_method(restApiId=api, resourceId=resource["id"],
                                              httpMethod="POST")
    return method


@pytest.mark.parametrize("mode", list(MODES))
def test_the_method_and_the_template_say_what_the_mode_asks(deployed: Deployed,
                                                            mode: str) -> None:
    served = deployed.served[mode]
    parameter, authorization, key_required = MODES[mode]
    method = predict_method(deployed, served.outputs)
    assert (method["authorizationType"], bool(method.get("apiKeyRequired"))) == (
        authorization, key_required)
    assert served.outputs["EndpointAuth"] == parameter
    assert ("ApiKeyId" in served.outputs) == (mode == "api_key")
    s3 = deployed.session.client("s3", endpoint_url=deployed.aws.endpoint_url)
    body = json.loads(s3.get_object(Bucket=BUCKET, Key=served.response["s3_template_key"])
                      ["Body"].read())
    props = body["Resources"]["PredictMethod"]["Properties"]
    values = {"EndpointAuth": parameter}
    assert evaluate(body, props["AuthorizationType"], values) == authorization
    assert evaluate(body, props["ApiKeyRequired"], values) is key_required
    stage = body["Resources"]["ApiStage"]["Properties"]
    chosen = evaluate(body, stage["DeploymentId"], values)["Ref"]
    assert body["Resources"][chosen]["Condition"] == {
        "AWS_IAM": "AuthIsIam", "API_KEY": "AuthIsApiKey", "NONE": "AuthIsNone"}[parameter]


@pytest.mark.parametrize("mode", list(MODES))
def test_a_call_with_what_the_mode_needs_is_answered(deployed: Deployed, mode: str) -> None:
    served = deployed.served[mode]
    key = api_key_value(deployed.clients, served.stack_name) if mode == "api_key" else None
    answer = call_endpoint(served.url, PAYLOAD, mode, session=deployed.session, api_key=key)
    assert answer.status == 200, answer.body
    assert answer.json() == {"predictions": EXPECTED}


@pytest.mark.parametrize("mode,message,error_type", [
    ("iam", "Missing Authentication Token", "MissingAuthenticationTokenException"),
    ("api_key", "Forbidden", "ForbiddenException"),
])
def test_a_call_without_it_is_refused(deployed: Deployed, mode: str, message: str,
                                      error_type: str) -> None:
    answer = call_endpoint(deployed.served[mode].url, PAYLOAD, "none")
    assert answer.status == 403
    assert answer.json() == {"message": message}
    assert answer.headers["x-amzn-ErrorType"] == error_type


def test_a_wrong_api_key_is_refused(deployed: Deployed) -> None:
    served = deployed.served["api_key"]
    right = api_key_value(deployed.clients, served.stack_name)
    answer = call_endpoint(served.url, PAYLOAD, "api_key", api_key=right[::-1])
    assert (answer.status, answer.json()) == (403, {"message": "Forbidden"})
    other = call_endpoint(deployed.served["iam"].url, PAYLOAD, "api_key", api_key=right)
    assert other.status == 403  # a key is no substitute for a signature


def test_a_signature_with_the_wrong_secret_or_region_is_refused(deployed: Deployed) -> None:
    import boto3

    url = deployed.served["iam"].url
    forged = boto3.Session("testing", "not-the-secret", region_name=REGION)
    answer = call_endpoint(url, PAYLOAD, "iam", session=forged)
    assert answer.status == 403
    assert "signature we calculated does not match" in answer.json()["message"]
    elsewhere = call_endpoint(url, PAYLOAD, "iam", session=deployed.session,
                              region="eu-west-1")
    assert elsewhere.status == 403 and "region" in elsewhere.json()["message"]
    unknown = boto3.Session("AKIAUNKNOWNKEY000000", "whatever", region_name=REGION)
    assert call_endpoint(url, PAYLOAD, "iam", session=unknown).status == 200  # well formed


def test_the_public_endpoint_needs_nothing(deployed: Deployed) -> None:
    assert call_endpoint(deployed.served["none"].url, PAYLOAD, "none").status == 200


def test_api_key_value_of_a_stack_without_a_key_fails_clearly(deployed: Deployed) -> None:
    with pytest.raises(EndpointAuthError, match="not deployed with endpoint_auth='api_key'"):
        api_key_value(deployed.clients, deployed.served["iam"].stack_name)


def test_the_authenticator_reads_the_mode_and_key_from_the_stack(deployed: Deployed) -> None:
    for mode, served in deployed.served.items():
        auth = EndpointAuthenticator.for_stack(deployed.clients, served.stack_name)
        assert auth.mode == mode
        assert (auth.api_key is not None) == (mode == "api_key")
        assert "testing" in auth.credentials  # the server's own signer is verifiable
        assert auth.api_key is None or auth.api_key not in repr(auth)


def test_cli_serve_enforces_the_api_key(deployed: Deployed, tmp_path: Any) -> None:
    served = deployed.served["api_key"]
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tdv_airflow.local.run", "serve", "--stack", served.stack_name,
         "--port", str(port), "--region", REGION, "--endpoint-url", deployed.aws.endpoint_url,
         "--workdir", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"127.0.0.1:{port}/predict" in line, line + (proc.stderr.read()
                                                            if proc.stderr else "")
        url = f"http://127.0.0.1:{port}/predict"
        key = api_key_value(deployed.clients, served.stack_name)
        refused = call_endpoint(url, PAYLOAD, "none")
        answered = call_endpoint(url, PAYLOAD, "api_key", api_key=key)
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert refused.status == 403
    assert answered.status == 200 and answered.json() == {"predictions": EXPECTED}
    assert key not in err


@pytest.mark.parametrize("bad", ["IAM ", "sigv4", "", None, 1])
def test_deploy_refuses_an_unknown_mode(deployed: Deployed, bad: Any) -> None:
    if bad == "IAM ":  # letter case and spaces are forgiven
        assert make_deploy(deployed.auth, BUCKET, "tdv-x", endpoint_auth=bad).endpoint_auth \
            == "iam"
        return
    with pytest.raises(InvalidInputError, match="invalid endpoint_auth"):
        make_deploy(deployed.auth, BUCKET, "tdv-x", endpoint_auth=bad)


def test_none_is_deployed_with_a_warning(deployed: Deployed,
                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="tdv_airflow")
    deploy = make_deploy(deployed.auth, BUCKET, deployed.served["none"].stack_name,
                         endpoint_auth="none")
    deploy.create_stack(deployed.served["none"].response, 0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("PUBLIC" in r.getMessage() for r in warnings)
    caplog.clear()
    deploy = make_deploy(deployed.auth, BUCKET, deployed.served["iam"].stack_name)
    deploy.create_stack(deployed.served["iam"].response, 0)
    assert not any("PUBLIC" in r.getMessage() for r in caplog.records)
