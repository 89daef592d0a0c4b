"""Each endpoint authentication mode, deployed on the emulator and served locally.

For every mode: the emulator's API Gateway method and the uploaded template say what the
mode asks; ``call_endpoint`` sends what the mode needs and the local stand-in of the API
(``LocalFunction`` + the local server, enforcing the mode read from the stack) accepts it,
while a request without it gets API Gateway's 403 and never reaches the function.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from tdv_airflow import UserAwsAuth
from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.stacks import describe
from tdv_airflow.endpoint.client import api_key_value, call_endpoint, call_stack_endpoint
from tdv_airflow.endpoint.verify import EndpointAuthenticator
from tdv_airflow.exceptions import EndpointAuthError, InvalidInputError, StackNotFoundError
from tdv_airflow.local.aws import LocalAws
from testkit.deployed import deploy_stack, serving, serving_cli
from testkit.models import REGION, make_deploy
from testkit.template_checks import evaluate

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
    workdir = tmp_path_factory.mktemp("local-run")
    served: dict[str, Served] = {}
    with ExitStack() as running:
        for mode in MODES:
            stack = deploy_stack(local_aws.endpoint_url, BUCKET,
                                 f"tdv-sec-{mode.replace('_', '')}", endpoint_auth=mode)
            server = running.enter_context(serving(stack.clients, stack.stack_name, workdir))
            assert server.stage_name == stack.outputs["StageName"]
            served[mode] = Served(mode, stack.stack_name, stack.outputs, stack.prepared,
                                  server.url)
        yield Deployed(local_aws, stack.auth, stack.clients, stack.session, served)


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
        "AWS_IAM": "RestAuthIsIam", "API_KEY": "RestAuthIsApiKey",
        "NONE": "RestAuthIsNone"}[parameter]  # the REST front door's (FrontDoor REST)


@pytest.mark.parametrize("mode", list(MODES))
def test_a_call_with_what_the_mode_needs_is_answered(deployed: Deployed, mode: str) -> None:
    served = deployed.served[mode]
    key = api_key_value(deployed.clients, served.stack_name) if mode == "api_key" else None
    answer = call_endpoint(served.url, PAYLOAD, mode, session=deployed.session, api_key=key)
    assert answer.status == 200, answer.body
    assert answer.json() == {"predictions": EXPECTED}


def served_at(deployed: Deployed, mode: str, url: str) -> dict[str, Any]:
    """The stack of ``mode`` as ``describe_stacks`` shows it, its ``ApiEndpoint`` output
    pointing at ``url`` (the emulator's own endpoint URL answers nothing)."""
    stack = describe(deployed.clients.cloudformation, deployed.served[mode].stack_name)
    assert stack is not None
    outputs = stack["Outputs"]
    assert [o["OutputKey"] for o in outputs].count("ApiEndpoint") == 1
    return {**stack, "Outputs": [{**o, "OutputValue": url} if o["OutputKey"] == "ApiEndpoint"
                                 else o for o in outputs]}


@pytest.mark.parametrize("mode", list(MODES))
def test_call_stack_endpoint_sends_what_the_stacks_mode_needs(deployed: Deployed,
                                                             mode: str) -> None:
    """The mode and the key come from the stack; the clients' credentials sign."""
    stack = served_at(deployed, mode, deployed.served[mode].url)
    answer = call_stack_endpoint(deployed.clients, stack, PAYLOAD)
    assert answer.status == 200, answer.body
    assert answer.json() == {"predictions": EXPECTED}
    with_session = call_stack_endpoint(deployed.clients, stack, PAYLOAD,
                                       session=deployed.session)
    assert (with_session.status, with_session.json()) == (200, {"predictions": EXPECTED})


@pytest.mark.parametrize("mode,server_mode,message", [
    ("none", "iam", "Missing Authentication Token"),
    ("none", "api_key", "Forbidden"),
    ("iam", "api_key", "Forbidden"),
    ("api_key", "iam", "Missing Authentication Token"),
])
def test_call_stack_endpoint_follows_the_stack_not_the_server(
        deployed: Deployed, mode: str, server_mode: str, message: str) -> None:
    """A stack whose mode is not the server's sends what its own mode needs: refused."""
    stack = served_at(deployed, mode, deployed.served[server_mode].url)
    answer = call_stack_endpoint(deployed.clients, stack, PAYLOAD)
    assert (answer.status, answer.json()) == (403, {"message": message})


def test_call_stack_endpoint_signs_with_the_session_it_is_given(deployed: Deployed) -> None:
    import boto3

    stack = served_at(deployed, "iam", deployed.served["iam"].url)
    forged = boto3.Session("testing", "not-the-secret", region_name=REGION)
    answer = call_stack_endpoint(deployed.clients, stack, PAYLOAD, session=forged)
    assert answer.status == 403
    assert "signature we calculated does not match" in answer.json()["message"]


def test_call_stack_endpoint_refuses_what_it_cannot_call(deployed: Deployed) -> None:
    with pytest.raises(StackNotFoundError, match="no-such-stack"):
        call_stack_endpoint(deployed.clients, "no-such-stack", PAYLOAD)
    stack = served_at(deployed, "none", deployed.served["none"].url)
    no_endpoint = {**stack, "Outputs": [o for o in stack["Outputs"]
                                        if o["OutputKey"] != "ApiEndpoint"]}
    with pytest.raises(EndpointAuthError, match="no ApiEndpoint output"):
        call_stack_endpoint(deployed.clients, no_endpoint, PAYLOAD)


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
    with serving_cli(served.stack_name, deployed.aws.endpoint_url, tmp_path) as cli:
        key = api_key_value(deployed.clients, served.stack_name)
        refused = call_endpoint(cli.url, PAYLOAD, "none")
        answered = call_endpoint(cli.url, PAYLOAD, "api_key", api_key=key)
    assert refused.status == 403
    assert answered.status == 200 and answered.json() == {"predictions": EXPECTED}
    assert key not in cli.stderr


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
