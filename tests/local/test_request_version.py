"""Validating a candidate version on AWS: one Lambda ``Invoke`` of the qualified version
with the API Gateway REST proxy event of ``POST /predict``, read as API Gateway reads it.

The emulator runs no Lambda, so these use botocore's Stubber on the documented shapes
of ``Invoke`` (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html): a
``200`` with the handler's return value as ``Payload``, ``ExecutedVersion``, and
``FunctionError`` (``X-Amz-Function-Error``) when the function raised.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.exceptions import InvalidInputError, UnknownVersionError
from tdv_airflow.local.request import no_live_version_reason, request_version

REGION = "eu-west-1"
FUNCTION = "tdv-iris-PredictFunction-AbC123"
STACK = {
    "StackName": "tdv-iris",
    "StackId": "arn:aws:cloudformation:eu-west-1:210987654321:stack/tdv-iris/0a1b2c3d",
    "StackStatus": "UPDATE_COMPLETE",
    "Outputs": [
        {"OutputKey": "FunctionName", "OutputValue": FUNCTION},
        {"OutputKey": "ApiId", "OutputValue": "abc123defg"},
        {"OutputKey": "StageName", "OutputValue": "v1"},
        {"OutputKey": "LiveAlias", "OutputValue": "live"},
    ],
}


class Stubbed:
    """AwsClients on AWS (no endpoint) whose Lambda client is stubbed, and the params of
    every call it was sent."""

    def __init__(self) -> None:
        import boto3

        session = boto3.Session(aws_access_key_id="x", aws_secret_access_key="x",  # noqa: S106
                                region_name=REGION)
        self.lambda_client = session.client("lambda")
        self.stubber = Stubber(self.lambda_client)
        self.sent: list[dict[str, Any]] = []
        self.lambda_client.meta.events.register(
            "provide-client-params.lambda.*",
            lambda params, **_: self.sent.append(dict(params)))
        clients = {"lambda": self.lambda_client, "s3": session.client("s3"),
                   "cloudformation": session.client("cloudformation")}
        self.clients = AwsClients(clients.__getitem__, REGION)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubbed]:
    """Real AWS clients (the emulator's ``AWS_ENDPOINT_URL`` unset), Lambda stubbed."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    stubbed = Stubbed()
    assert stubbed.clients.emulator_endpoint is None
    with stubbed.stubber:
        yield stubbed
        stubbed.stubber.assert_no_pending_responses()


def body(data: Any) -> StreamingBody:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def invoked(aws: Stubbed, payload: Any, version: str = "3", **extra: Any) -> None:
    aws.stubber.add_response("invoke", {"StatusCode": 200, "Payload": body(payload),
                                        "ExecutedVersion": version, **extra},
                             {"FunctionName": FUNCTION, "Qualifier": version,
                              "InvocationType": "RequestResponse", "Payload": ANY})


def test_a_candidate_is_invoked_with_a_real_rest_proxy_event(aws: Stubbed) -> None:
    invoked(aws, {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                  "body": json.dumps({"predictions": [1, 0]})})
    answer = request_version(aws.clients, STACK, "3", {"rows": [[1, 2], [3, 4]]})
    assert (answer.status, json.loads(answer.body), answer.version) == (
        200, {"predictions": [1, 0]}, "3")
    assert answer.emulator is None and answer.reason is None
    event = json.loads(aws.sent[0]["Payload"])
    assert (event["httpMethod"], event["path"], event["resource"]) == (
        "POST", "/predict", "/predict")
    assert json.loads(event["body"]) == {"rows": [[1, 2], [3, 4]]}
    assert event["isBase64Encoded"] is False
    assert event["headers"]["Content-Type"] == "application/json"
    assert event["headers"]["Host"] == "abc123defg.execute-api.eu-west-1.amazonaws.com"
    context = event["requestContext"]
    assert (context["stage"], context["apiId"], context["accountId"]) == (
        "v1", "abc123defg", "210987654321")
    assert (context["httpMethod"], context["resourcePath"], context["path"]) == (
        "POST", "/predict", "/v1/predict")
    assert context["requestId"] and context["identity"]["sourceIp"]


def test_a_base64_answer_is_decoded(aws: Stubbed) -> None:
    invoked(aws, {"statusCode": 200, "isBase64Encoded": True,
                  "body": "eyJwcmVkaWN0aW9ucyI6IFsyXX0="})
    answer = request_version(aws.clients, STACK, 3, {"rows": [[1]]})
    assert (answer.status, json.loads(answer.body)) == (200, {"predictions": [2]})


def test_a_function_error_is_a_502_quoting_the_error(aws: Stubbed) -> None:
    error = {"errorMessage": "predict exploded", "errorType": "RuntimeError",
             "requestId": "0f6a", "stackTrace": ["  File \"/var/task/model.py\", line 3"]}
    invoked(aws, error, FunctionError="Unhandled")
    answer = request_version(aws.clients, STACK, "3", {"rows": [[1]]})
    assert answer.status == 502
    assert json.loads(answer.body) == error
    assert answer.reason is not None and "Unhandled" in answer.reason
    assert answer.version == "3"


def test_a_malformed_proxy_response_is_api_gateways_502(aws: Stubbed) -> None:
    invoked(aws, {"predictions": [1]})  # not a proxy response
    answer = request_version(aws.clients, STACK, "3", {"rows": [[1]]})
    assert (answer.status, json.loads(answer.body)) == (
        502, {"message": "Internal server error"})
    assert answer.reason is not None and "no valid proxy response" in answer.reason


def test_an_unknown_version_is_refused_naming_it(aws: Stubbed) -> None:
    aws.stubber.add_client_error(
        "invoke", "ResourceNotFoundException",
        f"Function not found: arn:aws:lambda:eu-west-1:210987654321:function:{FUNCTION}:9",
        http_status_code=404)
    with pytest.raises(UnknownVersionError, match="has no version '9'"):
        request_version(aws.clients, STACK, "9", {"rows": [[1]]})


def test_a_refused_invocation_is_api_gateways_500(aws: Stubbed) -> None:
    aws.stubber.add_client_error("invoke", "TooManyRequestsException", "Rate Exceeded.",
                                 http_status_code=429)
    answer = request_version(aws.clients, STACK, "3", {"rows": [[1]]})
    assert (answer.status, json.loads(answer.body)) == (
        500, {"message": "Internal server error"})
    assert answer.reason is not None and "TooManyRequestsException" in answer.reason


@pytest.mark.parametrize("version", ["$LATEST", "live", "0", "-1", "1.5", "", None, True])
def test_bad_versions_are_refused_before_any_call(aws: Stubbed, version: Any) -> None:
    with pytest.raises(InvalidInputError, match="invalid version"):
        request_version(aws.clients, STACK, version, {"rows": [[1]]})
    assert aws.sent == []


def test_a_500_is_explained_when_the_live_alias_does_not_exist(aws: Stubbed) -> None:
    aws.stubber.add_client_error(
        "get_alias", "ResourceNotFoundException",
        f"Cannot find alias arn: arn:aws:lambda:eu-west-1:210987654321:function:{FUNCTION}"
        ":live", http_status_code=404)
    reason = no_live_version_reason(aws.clients, STACK)
    assert reason is not None and "no live version yet" in reason and "'live'" in reason
    aws.stubber.add_response("get_alias", {"Name": "live", "FunctionVersion": "3",
                                           "AliasArn": f"arn:aws:lambda:{REGION}:1:function:"
                                                       f"{FUNCTION}:live"})
    assert no_live_version_reason(aws.clients, STACK) is None
