"""``tdv_airflow.local.fix_apigatewayv2``: an HTTP API (``AWS::ApiGatewayV2::*``) in
moto's CloudFormation.

The same stack on moto as it is (which fails the stack with a 500: when that test fails, moto
has caught up and the fix can go) and on moto with only this fix (what AWS does: the
stack creates the API, its integration, route and stage, ``Ref`` and ``GetAtt`` resolve,
an update keeps the API's id, the delete removes everything).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.local.conftest import Moto

FUNCTION_ARN = "arn:aws:lambda:us-east-1:123456789012:function:predict:live"
TEMPLATE: dict[str, Any] = {
    "Parameters": {"Burst": {"Type": "Number", "Default": 100},
                   "Auth": {"Type": "String", "Default": "AWS_IAM"}},
    "Resources": {
        "Api": {"Type": "AWS::ApiGatewayV2::Api", "Properties": {
            "Name": {"Fn::Sub": "${AWS::StackName}-api"}, "ProtocolType": "HTTP"}},
        "Integration": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
            "ApiId": {"Ref": "Api"}, "IntegrationType": "AWS_PROXY",
            "IntegrationUri": FUNCTION_ARN, "PayloadFormatVersion": "2.0",
            "TimeoutInMillis": 30000}},
        "Route": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
            "ApiId": {"Ref": "Api"}, "RouteKey": "POST /predict",
            "AuthorizationType": {"Ref": "Auth"},
            "Target": {"Fn::Sub": "integrations/${Integration}"}}},
        "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {
            "ApiId": {"Ref": "Api"}, "StageName": "$default", "AutoDeploy": True,
            "AccessLogSettings": {"DestinationArn": "arn:aws:logs:us-east-1:123456789012:"
                                                    "log-group:access", "Format": "{}"},
            "DefaultRouteSettings": {"ThrottlingBurstLimit": {"Ref": "Burst"},
                                     "ThrottlingRateLimit": 50}}},
    },
    "Outputs": {"ApiId": {"Value": {"Ref": "Api"}},
                "Endpoint": {"Value": {"Fn::GetAtt": ["Api", "ApiEndpoint"]}},
                "Stage": {"Value": {"Ref": "Stage"}}},
}


@pytest.fixture(scope="module")
def plain(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(())


@pytest.fixture(scope="module")
def fixed(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(("fix_apigatewayv2",))


def deploy(moto: Moto, stack_name: str, update: bool = False, **parameters: str
           ) -> dict[str, str]:
    cfn = moto.client("cloudformation")
    call = cfn.update_stack if update else cfn.create_stack
    call(StackName=stack_name, TemplateBody=json.dumps(TEMPLATE),
         Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()])
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def test_moto_alone_fails_the_http_api_stack(plain: Moto) -> None:
    from botocore.parsers import ResponseParserError

    with pytest.raises(ResponseParserError, match="500 Internal Server Error"):
        deploy(plain, "tdv-http-plain")
    assert plain.client("apigatewayv2").get_apis()["Items"] == []


def test_with_the_fix_the_stack_makes_the_http_api(fixed: Moto) -> None:
    v2 = fixed.client("apigatewayv2")
    outputs = deploy(fixed, "tdv-http-fixed")
    api_id = outputs["ApiId"]
    assert [a["Name"] for a in v2.get_apis()["Items"]] == ["tdv-http-fixed-api"]
    assert outputs["Endpoint"] == f"https://{api_id}.execute-api.us-east-1.amazonaws.com"
    assert outputs["Stage"] == "$default"
    [integration] = v2.get_integrations(ApiId=api_id)["Items"]
    assert (integration["IntegrationType"], integration["IntegrationUri"],
            integration["PayloadFormatVersion"], integration["TimeoutInMillis"]) == (
        "AWS_PROXY", FUNCTION_ARN, "2.0", 30000)
    [route] = v2.get_routes(ApiId=api_id)["Items"]
    assert (route["RouteKey"], route["AuthorizationType"], route["Target"]) == (
        "POST /predict", "AWS_IAM", f"integrations/{integration['IntegrationId']}")
    stage = v2.get_stage(ApiId=api_id, StageName="$default")
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == 100
    assert stage["AccessLogSettings"]["Format"] == "{}"
    # an update keeps the API (its URL) and replaces the route with the new auth
    outputs = deploy(fixed, "tdv-http-fixed", update=True, Auth="NONE", Burst="7")
    assert outputs["ApiId"] == api_id
    [route] = v2.get_routes(ApiId=api_id)["Items"]
    assert route["AuthorizationType"] == "NONE"
    assert v2.get_stage(ApiId=api_id, StageName="$default")[
        "DefaultRouteSettings"]["ThrottlingBurstLimit"] == 7
    fixed.client("cloudformation").delete_stack(StackName="tdv-http-fixed")
    assert v2.get_apis()["Items"] == []
