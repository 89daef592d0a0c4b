"""Emulator fidelity: CloudFormation support for API keys and usage plans in moto.

moto 5.2 keeps API keys, usage plans and usage plan keys in its API Gateway backend but
its CloudFormation ignores ``AWS::ApiGateway::ApiKey``, ``UsagePlan`` and
``UsagePlanKey``: a stack skips them, and an output that ``Ref``\\ s the key is dropped.
:func:`install` registers CloudFormation models that create (and delete) them through
the backend, so a stack deployed with ``EndpointAuth`` ``API_KEY`` gets a real key on the
emulator too, readable with ``apigateway:GetApiKey`` like on AWS. The usage plan's
throttle and quota are stored, not enforced (moto enforces none).

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts (moto
caches its map of CloudFormation models on first use). Without moto the module is not
importable (the ``local`` extra).
"""

from __future__ import annotations

from typing import Any

#: The registered model classes. moto finds models through ``__subclasses__()``, which
#: holds classes weakly: keep them alive here.
_MODELS: list[type] = []


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def _number(value: Any) -> int | float | None:
    if value is None:
        return None
    number = float(value)
    return int(number) if number.is_integer() else number


def install() -> None:
    """Register the CloudFormation models (idempotent)."""
    from moto.apigateway.models import apigateway_backends
    from moto.cloudformation.parsing import get_model_list, get_model_map, get_name_type_map
    from moto.core.common_models import CloudFormationModel

    if "AWS::ApiGateway::ApiKey" in get_model_map():
        return

    class CfnApiKey(CloudFormationModel):
        """``AWS::ApiGateway::ApiKey``: ``Ref`` is the key's id, as on AWS."""

        def __init__(self, key_id: str) -> None:
            self.key_id = key_id

        @property
        def physical_resource_id(self) -> str:
            return self.key_id

        @staticmethod
        def cloudformation_name_type() -> str:
            return "Name"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::ApiGateway::ApiKey"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "APIKeyId"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return self.key_id

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
            region_name: str, **kwargs: Any,
        ) -> CfnApiKey:
            props = cloudformation_json.get("Properties") or {}
            payload = {"name": props.get("Name") or resource_name,
                       "description": props.get("Description"),
                       "enabled": _truthy(props.get("Enabled", False)),
                       "value": props.get("Value"),
                       "customerId": props.get("CustomerId")}
            backend = apigateway_backends[account_id][region_name]
            key = backend.create_api_key({k: v for k, v in payload.items() if v is not None})
            return cls(key.id)

        def delete(self, account_id: str, region_name: str) -> None:
            backend = apigateway_backends[account_id][region_name]
            backend.keys.pop(self.key_id, None)

        def is_created(self) -> bool:
            return True

    class CfnUsagePlan(CloudFormationModel):
        """``AWS::ApiGateway::UsagePlan``: ``Ref`` is the plan's id."""

        def __init__(self, plan_id: str) -> None:
            self.plan_id = plan_id

        @property
        def physical_resource_id(self) -> str:
            return self.plan_id

        @staticmethod
        def cloudformation_name_type() -> str:
            return "UsagePlanName"

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::ApiGateway::UsagePlan"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Id"

        def get_cfn_attribute(self, attribute_name: str) -> str:
            return self.plan_id

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
            region_name: str, **kwargs: Any,
        ) -> CfnUsagePlan:
            props = cloudformation_json.get("Properties") or {}
            throttle = props.get("Throttle") or {}
            quota = props.get("Quota") or {}
            payload: dict[str, Any] = {
                "name": props.get("UsagePlanName") or resource_name,
                "description": props.get("Description"),
                "apiStages": [{"apiId": s.get("ApiId"), "stage": s.get("Stage")}
                              for s in props.get("ApiStages") or []],
            }
            if throttle:
                payload["throttle"] = {"burstLimit": _number(throttle.get("BurstLimit")),
                                       "rateLimit": _number(throttle.get("RateLimit"))}
            if quota:
                payload["quota"] = {"limit": _number(quota.get("Limit")),
                                    "period": quota.get("Period"),
                                    "offset": _number(quota.get("Offset")) or 0}
            backend = apigateway_backends[account_id][region_name]
            plan = backend.create_usage_plan({k: v for k, v in payload.items() if v is not None})
            return cls(plan.id)

        def delete(self, account_id: str, region_name: str) -> None:
            backend = apigateway_backends[account_id][region_name]
            backend.usage_plans.pop(self.plan_id, None)
            backend.usage_plan_keys.pop(self.plan_id, None)

        def is_created(self) -> bool:
            return True

    class CfnUsagePlanKey(CloudFormationModel):
        """``AWS::ApiGateway::UsagePlanKey``: attaches a key to a plan."""

        def __init__(self, plan_id: str, key_id: str) -> None:
            self.plan_id = plan_id
            self.key_id = key_id

        @property
        def physical_resource_id(self) -> str:
            return f"{self.key_id}:{self.plan_id}"

        @staticmethod
        def cloudformation_name_type() -> str:
            return ""

        @staticmethod
        def cloudformation_type() -> str:
            return "AWS::ApiGateway::UsagePlanKey"

        @classmethod
        def has_cfn_attr(cls, attr: str) -> bool:
            return attr == "Id"

        @classmethod
        def create_from_cloudformation_json(  # type: ignore[override]
            cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str,
            region_name: str, **kwargs: Any,
        ) -> CfnUsagePlanKey:
            props = cloudformation_json.get("Properties") or {}
            backend = apigateway_backends[account_id][region_name]
            backend.create_usage_plan_key(props["UsagePlanId"], {
                "keyId": props["KeyId"], "keyType": props.get("KeyType", "API_KEY")})
            return cls(props["UsagePlanId"], props["KeyId"])

        def delete(self, account_id: str, region_name: str) -> None:
            backend = apigateway_backends[account_id][region_name]
            backend.usage_plan_keys.get(self.plan_id, {}).pop(self.key_id, None)

        def is_created(self) -> bool:
            return True

    _MODELS.extend([CfnApiKey, CfnUsagePlan, CfnUsagePlanKey])
    get_model_list.cache_clear()
    get_model_map.cache_clear()
    get_name_type_map.cache_clear()
