"""``tdv_airflow.local.fix_api_keys``: CloudFormation API keys and usage plans on moto.

The same stack on moto as it is (which skips the three resource types: when that test
fails, moto has caught up and the fix can go) and on moto with only this fix (what AWS
does: a real key, readable with ``GetApiKey``, in a usage plan, removed with the stack).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.local.conftest import Moto

#: An API key in a usage plan with a throttle and a quota; outputs refer to both.
TEMPLATE = {
    "Resources": {
        "Key": {"Type": "AWS::ApiGateway::ApiKey",
                "Properties": {"Name": "tdv-fix-key", "Enabled": True}},
        "Plan": {"Type": "AWS::ApiGateway::UsagePlan", "Properties": {
            "UsagePlanName": "tdv-fix-plan",
            "Throttle": {"BurstLimit": 20, "RateLimit": 10},
            "Quota": {"Limit": 1000, "Period": "DAY"}}},
        "PlanKey": {"Type": "AWS::ApiGateway::UsagePlanKey", "Properties": {
            "KeyId": {"Ref": "Key"}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": "Plan"}}},
    },
    "Outputs": {"ApiKeyId": {"Value": {"Ref": "Key"}},
                "PlanId": {"Value": {"Ref": "Plan"}}},
}


def create(moto: Moto, stack_name: str) -> dict[str, str]:
    """Create the stack; its outputs."""
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(TEMPLATE))
    stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs") or []}


def test_moto_alone_skips_keys_and_usage_plans(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(())
    outputs = create(moto, "tdv-no-fix")
    assert "ApiKeyId" not in outputs
    apigw = moto.client("apigateway")
    assert apigw.get_api_keys()["items"] == []
    assert apigw.get_usage_plans()["items"] == []


def test_with_the_fix_the_stack_has_a_real_key_in_a_plan(
        moto_with: Callable[[tuple[str, ...]], Moto]) -> None:
    moto = moto_with(("fix_api_keys",))
    outputs = create(moto, "tdv-fix")
    apigw = moto.client("apigateway")
    key = apigw.get_api_key(apiKey=outputs["ApiKeyId"], includeValue=True)
    assert key["name"] == "tdv-fix-key" and key["enabled"] is True
    assert len(key["value"]) >= 20
    plan = apigw.get_usage_plan(usagePlanId=outputs["PlanId"])
    assert plan["name"] == "tdv-fix-plan"
    assert plan["throttle"] == {"burstLimit": 20, "rateLimit": 10.0}
    assert (plan["quota"]["limit"], plan["quota"]["period"]) == (1000, "DAY")
    keys = apigw.get_usage_plan_keys(usagePlanId=outputs["PlanId"])["items"]
    assert [k["id"] for k in keys] == [outputs["ApiKeyId"]]

    moto.client("cloudformation").delete_stack(StackName="tdv-fix")
    assert apigw.get_api_keys()["items"] == []
    assert apigw.get_usage_plans()["items"] == []
