"""Each front door in the shipped template: the resources its ``FrontDoor`` condition
selects, the auth of each mode, and a stack per door on the embedded AWS (one module
deployment per door) with its outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tdv_airflow.core.resources import default_template_path
from testkit.template_checks import evaluate

REST_ONLY = {"RestApi", "PredictResource", "PredictMethod", "ApiStage"}
HTTP_ONLY = {"HttpApi", "HttpIntegration", "HttpRoute", "HttpStage"}


def template() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(default_template_path().read_text())
    return body


def active(body: dict[str, Any], door: str, auth: str = "AWS_IAM") -> set[str]:
    values = {"FrontDoor": door, "EndpointAuth": auth}
    return {name for name, resource in body["Resources"].items()
            if "Condition" not in resource
            or evaluate(body, {"Fn::If": [resource["Condition"], True, False]}, values)}


@pytest.mark.parametrize("door", ["REST", "HTTP", "URL"])
def test_each_front_door_selects_its_resources(door: str) -> None:
    body = template()
    names = active(body, door)
    assert (REST_ONLY <= names) is (door == "REST")
    assert not (REST_ONLY & names) or door == "REST"
    assert (HTTP_ONLY <= names) is (door == "HTTP")
    assert not (HTTP_ONLY & names) or door == "HTTP"
    assert ("AccessLogGroup" in names) is (door != "URL")
    assert "PredictFunction" in names and "Api5xxAlarm" in names
    assert not {"ApiKey", "UsagePlan", "UsagePlanKey"} & active(body, door, "API_KEY") \
        or door == "REST"
    types = {body["Resources"][n]["Type"] for n in names}
    assert "AWS::Lambda::Url" not in types  # the core owns the URL (on the alias live)


@pytest.mark.parametrize(("auth", "expected"), [
    ("AWS_IAM", "AWS_IAM"), ("NONE", "NONE"),
    ("API_KEY", "AWS_IAM")])  # refused by the core; a stack given it anyway fails closed
def test_the_http_route_authenticates_as_endpoint_auth_says(auth: str, expected: str) -> None:
    body = template()
    route = body["Resources"]["HttpRoute"]["Properties"]
    assert evaluate(body, route["AuthorizationType"], {"EndpointAuth": auth}) == expected
    integration = body["Resources"]["HttpIntegration"]["Properties"]
    assert integration["IntegrationUri"] == {"Fn::Sub": "${PredictFunction.Arn}:live"}
    assert (integration["PayloadFormatVersion"], integration["TimeoutInMillis"]) == (
        "2.0", 30000)
    stage = body["Resources"]["HttpStage"]["Properties"]
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == {
        "Ref": "ThrottlingBurstLimit"}
    assert "$context.identity.sourceIp" in stage["AccessLogSettings"]["Format"]
    assert "API_KEY" in body["Resources"]["HttpRoute"]["Metadata"][
        "com.aws.cloudformation.Context"]["why"]


@pytest.mark.parametrize(("door", "namespace", "metric"), [
    ("REST", "AWS/ApiGateway", "5XXError"), ("HTTP", "AWS/ApiGateway", "5xx"),
    ("URL", "AWS/Lambda", "Url5xxCount")])
def test_the_5xx_alarm_watches_the_front_door(door: str, namespace: str, metric: str) -> None:
    body = template()
    props = body["Resources"]["Api5xxAlarm"]["Properties"]
    assert evaluate(body, props["Namespace"], {"FrontDoor": door}) == namespace
    assert evaluate(body, props["MetricName"], {"FrontDoor": door}) == metric


@pytest.fixture(scope="module")
def stacks(local_aws: Any) -> Iterator[Any]:
    """The shipped template deployed once per non-default front door (on the session's
    emulator, emptied first); a boto3 Session on it."""
    import boto3

    from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY
    from testkit.deployed import deploy_stack

    local_aws.reset()
    for door in ("HTTP", "URL"):
        deploy_stack(local_aws.endpoint_url, "tdv-front-doors", f"tdv-door-{door.lower()}",
                     endpoint_auth="none", stack_parameters={"FrontDoor": door})
    yield boto3.Session(FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, region_name="us-east-1")


def _outputs(aws: Any, boto_session: Any, name: str) -> dict[str, str]:
    cfn = boto_session.client("cloudformation", endpoint_url=aws.endpoint_url)
    stack = cfn.describe_stacks(StackName=name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def test_an_http_api_stack_on_the_embedded_aws(stacks: Any, local_aws: Any) -> None:
    aws, boto_session = local_aws, stacks
    outputs = _outputs(aws, boto_session, "tdv-door-http")
    v2 = boto_session.client("apigatewayv2", endpoint_url=aws.endpoint_url)
    api_id = outputs["ApiId"]
    assert outputs["FrontDoor"] == "HTTP" and outputs["StageName"] == "$default"
    assert outputs["ApiEndpoint"] == \
        f"https://{api_id}.execute-api.us-east-1.amazonaws.com/predict"
    [route] = v2.get_routes(ApiId=api_id)["Items"]
    assert (route["RouteKey"], route["AuthorizationType"]) == ("POST /predict", "NONE")
    [integration] = v2.get_integrations(ApiId=api_id)["Items"]
    assert integration["IntegrationUri"].endswith(":function:" + outputs["FunctionName"]
                                                  + ":live")
    apis = boto_session.client("apigateway", endpoint_url=aws.endpoint_url).get_rest_apis()
    assert not [a for a in apis["items"] if a["name"] == "tdv-door-http-api"]


def test_a_function_url_stack_has_no_api_and_its_release_makes_the_url_on_live(
        stacks: Any, local_aws: Any) -> None:
    aws, boto_session = local_aws, stacks
    outputs = _outputs(aws, boto_session, "tdv-door-url")
    assert outputs["FrontDoor"] == "URL"
    assert "ApiEndpoint" not in outputs and "ApiId" not in outputs
    assert outputs["ApiName"] == outputs["FunctionName"] + ":live"
    from tdv_airflow.core.front_door_aws import NO_URL_YET, endpoint_status

    lam = boto_session.client("lambda", endpoint_url=aws.endpoint_url)
    url = lam.get_function_url_config(FunctionName=outputs["FunctionName"], Qualifier="live")
    assert url["AuthType"] == "NONE"  # Deploy.deploy released: the core made the URL
    assert endpoint_status(lam, outputs) == (url["FunctionUrl"], None)
    assert endpoint_status(lam, {**outputs, "FunctionName": "never-released"})[1] \
        == NO_URL_YET
