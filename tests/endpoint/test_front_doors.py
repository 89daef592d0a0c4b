"""Each front door, deployed on the emulator and served locally (``tdv-local-run serve``'s
server): the HTTP API (payload 2.0, ``POST /predict`` only, SigV4 for ``execute-api``)
and the function URL (payload 2.0, any path, SigV4 for ``lambda``), called with
botocore's real signature and answered by the deployed function like the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.front_door_aws import NO_URL_YET
from tdv_airflow.endpoint.client import (
    EXECUTE_API,
    LAMBDA,
    call_endpoint,
    region_of,
    signing_service,
    stack_endpoint,
)
from tdv_airflow.exceptions import EndpointAuthError
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.local.request import proxy_event, request_stack
from testkit.deployed import LocalServer, deploy_stack, serving

BUCKET = "tdv-doors"
PAYLOAD = {"rows": [[1, 2, 3], [4, 5, 6]]}
EXPECTED = {"predictions": [6.0, 15.0]}
#: stack -> (front door, endpoint_auth)
STACKS = {"tdv-door-http": ("http", "iam"), "tdv-door-url": ("url", "iam"),
          "tdv-door-url-open": ("url", "none")}


@dataclass
class Doors:
    clients: AwsClients
    session: Any
    servers: dict[str, LocalServer]
    outputs: dict[str, dict[str, str]]


@pytest.fixture(scope="module")
def doors(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Doors]:
    """One stack per door (released: a URL exists once the alias ``live`` does), each
    behind the local server."""
    local_aws.reset()
    workdir = tmp_path_factory.mktemp("doors")
    servers: dict[str, LocalServer] = {}
    outputs: dict[str, dict[str, str]] = {}
    with ExitStack() as running:
        for name, (door, auth) in STACKS.items():
            stack = deploy_stack(local_aws.endpoint_url, BUCKET, name, endpoint_auth=auth,
                                 function_options={"front_door": door})
            outputs[name] = stack.outputs
            servers[name] = running.enter_context(serving(stack.clients, name, workdir))
        yield Doors(stack.clients, stack.session, servers, outputs)


def test_the_http_api_answers_a_signed_post_predict_like_the_model(doors: Doors) -> None:
    server = doors.servers["tdv-door-http"]
    assert server.function.function is not None
    assert server.function.function.front_door == "http"
    answer = call_endpoint(f"{server.base_url}/predict", PAYLOAD, "iam",
                           session=doors.session, front_door="http")
    assert (answer.status, answer.json()) == (200, EXPECTED)
    unsigned = call_endpoint(f"{server.base_url}/predict", PAYLOAD, "none")
    assert unsigned.status == 403
    # the $default stage has no stage segment, and the only route is POST /predict
    for path in ("/prod/predict", "/", "/other"):
        missing = call_endpoint(f"{server.base_url}{path}", PAYLOAD, "iam",
                                session=doors.session, front_door="http")
        assert (missing.status, missing.json()) == (404, {"message": "Not Found"}), path


def test_the_function_url_answers_on_any_path_signed_for_lambda(doors: Doors) -> None:
    server = doors.servers["tdv-door-url"]
    for path in ("/", "/predict", "/any/path"):
        answer = call_endpoint(f"{server.base_url}{path}", PAYLOAD, "iam",
                               session=doors.session, front_door="url")
        assert (answer.status, answer.json()) == (200, EXPECTED), path
    # signed for API Gateway's service: not a function URL's signature
    wrong = call_endpoint(f"{server.base_url}/", PAYLOAD, "iam", session=doors.session,
                          front_door="rest")
    assert wrong.status == 403
    assert "'execute-api', not 'lambda'" in wrong.json()["message"]
    assert call_endpoint(f"{server.base_url}/", PAYLOAD, "none").status == 403


def test_an_open_function_url_answers_anyone(doors: Doors) -> None:
    server = doors.servers["tdv-door-url-open"]
    answer = call_endpoint(f"{server.base_url}/", PAYLOAD, "none")
    assert (answer.status, answer.json()) == (200, EXPECTED)


def test_the_stack_endpoint_of_a_url_is_the_live_alias_url_signed_for_lambda(
        doors: Doors) -> None:
    lam = doors.clients.lambda_
    url = lam.get_function_url_config(FunctionName="tdv-door-url",
                                      Qualifier="live")["FunctionUrl"]
    found = stack_endpoint(doors.clients, "tdv-door-url")
    assert (found.url, found.auth_mode, found.front_door, found.service) == (
        url, "iam", "url", LAMBDA)
    assert region_of(found.url) == "us-east-1"
    http = stack_endpoint(doors.clients, "tdv-door-http")
    assert (http.url, http.service) == (doors.outputs["tdv-door-http"]["ApiEndpoint"],
                                        EXECUTE_API)
    assert http.url.endswith(".execute-api.us-east-1.amazonaws.com/predict")


def test_a_url_stack_before_its_first_release_has_no_endpoint_and_says_why(
        doors: Doors) -> None:
    from tdv_airflow.core.stacks import describe

    stack = describe(doors.clients.cloudformation, "tdv-door-url")
    assert stack is not None
    renamed = {**stack, "Outputs": [{**o, "OutputValue": "tdv-door-none"}
                                    if o["OutputKey"] == "FunctionName" else o
                                    for o in stack["Outputs"]]}
    with pytest.raises(EndpointAuthError, match="created on the alias 'live'") as caught:
        stack_endpoint(doors.clients, renamed)
    assert NO_URL_YET in str(caught.value)


def test_an_api_key_is_refused_off_the_rest_api_before_any_request() -> None:
    for url, door in (("https://abc.lambda-url.eu-west-1.on.aws/", None),
                      ("http://127.0.0.1:9/predict", "http")):
        with pytest.raises(EndpointAuthError, match="API keys exist only on the REST API"):
            call_endpoint(url, PAYLOAD, "api_key", api_key="k", front_door=door)


def test_signing_service_and_region_follow_the_host() -> None:
    assert signing_service("https://abc123.lambda-url.eu-west-1.on.aws/") == LAMBDA
    assert signing_service("https://a1.execute-api.eu-west-1.amazonaws.com/predict") \
        == EXECUTE_API
    assert signing_service("http://127.0.0.1:8080/", "url") == LAMBDA
    assert region_of("https://abc123.lambda-url.eu-west-1.on.aws/") == "eu-west-1"


def test_the_emulator_path_sends_each_door_its_event(doors: Doors) -> None:
    """``request_stack`` (the smoke test's path) answers through each door; the event a
    version is asked with is the door's (2.0 for HTTP API and URL)."""
    from tdv_airflow.core.stacks import describe

    for name, (door, _) in STACKS.items():
        answer = request_stack(doors.clients, name, PAYLOAD)
        assert (answer.status, answer.body) == (200, '{"predictions": [6.0, 15.0]}'), name
        stack = describe(doors.clients.cloudformation, name)
        assert stack is not None
        event = proxy_event(doors.clients, stack, PAYLOAD)
        assert event["version"] == "2.0"
        assert event["routeKey"] == ("$default" if door == "url" else "POST /predict")
        assert event["requestContext"]["http"]["method"] == "POST"
