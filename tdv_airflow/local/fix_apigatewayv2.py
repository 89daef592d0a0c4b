"""Emulator fidelity: an API Gateway HTTP API (``AWS::ApiGatewayV2::*``) in moto's
CloudFormation.

On AWS a stack creates, updates and deletes an HTTP API, its integrations, routes and
stages like any other resource: ``Ref`` to an ``AWS::ApiGatewayV2::Api`` is its id (``Fn::GetAtt
ApiEndpoint`` its ``https://{id}.execute-api.{region}.amazonaws.com``), to an
``Integration`` the integration's id, to a ``Route`` the route's id, to a ``Stage`` its
name; ``apigatewayv2:GetApis``, ``GetIntegrations``, ``GetRoutes`` and ``GetStages`` list
what the stack made. moto 5.2.5 has these in its ``apigatewayv2`` backend but no
CloudFormation model: a stack skips the resources and a ``Ref`` to them resolves to
nothing, so an HTTP API front door never exists on the emulator. :func:`install`
registers models that go through the backend (``create_api``, ``create_integration``,
``create_route``, ``create_stage`` and their deletes), as CloudFormation goes through the
API:

* ``Api``: ``Name``, ``Description``, ``ProtocolType``, ``DisableExecuteApiEndpoint``; an
  update changes the API in place (its id, hence its URL, stays);
* ``Integration``, ``Route``, ``Stage``: the properties of the create call; an update
  replaces the resource in the same API (the stage keeps its name);
* deleting the stack deletes them; deleting the API deletes what it holds.

Only what a front door uses is modelled: no authorizers, models, domain names or
WebSocket route responses (a template using them is skipped as before). The emulator
routes no request through the API: the local runner builds the payload 2.0 event
(:mod:`tdv_airflow.local.events`). :mod:`tdv_airflow.local.moto_server` calls
:func:`install` before the server starts. Without moto the module is not importable (the
``local`` extra).
"""

from __future__ import annotations

from typing import Any

#: The registered model classes (moto finds models through ``__subclasses__()``, which
#: holds classes weakly: keep them alive here).
_MODELS: list[type] = []
#: Stage properties and the backend's (API's JSON) names for them.
_STAGE_KEYS = {"StageName": "stageName", "AutoDeploy": "autoDeploy",
               "Description": "description", "StageVariables": "stageVariables"}
_LOG_KEYS = {"DestinationArn": "destinationArn", "Format": "format"}
_ROUTE_SETTING_KEYS = {"ThrottlingBurstLimit": "throttlingBurstLimit",
                       "ThrottlingRateLimit": "throttlingRateLimit",
                       "DetailedMetricsEnabled": "detailedMetricsEnabled",
                       "DataTraceEnabled": "dataTraceEnabled", "LoggingLevel": "loggingLevel"}


def _number(value: Any) -> Any:
    """A CloudFormation number (given as a string when it comes from a parameter)."""
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return value
    return int(as_float) if as_float.is_integer() else as_float


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def stage_config(properties: dict[str, Any]) -> dict[str, Any]:
    """The backend's ``create_stage`` configuration for a stage's resolved properties.

    :param properties: the ``AWS::ApiGatewayV2::Stage`` ``Properties``, intrinsics resolved.
    """
    config: dict[str, Any] = {api: properties[cfn] for cfn, api in _STAGE_KEYS.items()
                              if cfn in properties}
    if "autoDeploy" in config:
        config["autoDeploy"] = _truthy(config["autoDeploy"])
    logs = properties.get("AccessLogSettings")
    if logs:
        config["accessLogSettings"] = {api: logs[cfn] for cfn, api in _LOG_KEYS.items()
                                       if cfn in logs}
    defaults = properties.get("DefaultRouteSettings")
    if defaults:
        config["defaultRouteSettings"] = {
            api: (_truthy(defaults[cfn]) if cfn.endswith("Enabled") else _number(defaults[cfn]))
            for cfn, api in _ROUTE_SETTING_KEYS.items() if cfn in defaults}
    return config


def _create(kind: str, backend: Any, props: dict[str, Any]) -> tuple[str, str, Any]:
    """Create one resource; ``(api id, physical id, backend object)``."""
    if kind == "Api":
        api = backend.create_api(
            api_key_selection_expression=props.get("ApiKeySelectionExpression"),
            cors_configuration=props.get("CorsConfiguration"),
            description=props.get("Description"),
            disable_schema_validation=props.get("DisableSchemaValidation"),
            disable_execute_api_endpoint=props.get("DisableExecuteApiEndpoint"),
            name=props["Name"], protocol_type=props["ProtocolType"],
            route_selection_expression=props.get("RouteSelectionExpression"),
            tags=props.get("Tags") or {}, version=props.get("Version"))
        return api.api_id, api.api_id, api
    api_id = str(props["ApiId"])
    if kind == "Integration":
        made = backend.create_integration(
            api_id=api_id, connection_id=props.get("ConnectionId"),
            connection_type=props.get("ConnectionType"),
            content_handling_strategy=props.get("ContentHandlingStrategy"),
            credentials_arn=props.get("CredentialsArn"), description=props.get("Description"),
            integration_method=props.get("IntegrationMethod"),
            integration_subtype=props.get("IntegrationSubtype"),
            integration_type=props["IntegrationType"],
            integration_uri=props.get("IntegrationUri"),
            passthrough_behavior=props.get("PassthroughBehavior"),
            payload_format_version=props.get("PayloadFormatVersion"),
            request_parameters=props.get("RequestParameters"),
            request_templates=props.get("RequestTemplates"),
            response_parameters=props.get("ResponseParameters"),
            template_selection_expression=props.get("TemplateSelectionExpression"),
            timeout_in_millis=_number(props.get("TimeoutInMillis")),
            tls_config=props.get("TlsConfig"))
        return api_id, made.id, made
    if kind == "Route":
        made = backend.create_route(
            api_id=api_id, api_key_required=_truthy(props.get("ApiKeyRequired", False)),
            authorization_scopes=props.get("AuthorizationScopes") or [],
            authorization_type=props.get("AuthorizationType") or "NONE",
            authorizer_id=props.get("AuthorizerId"),
            model_selection_expression=props.get("ModelSelectionExpression"),
            operation_name=props.get("OperationName"),
            request_models=props.get("RequestModels"),
            request_parameters=props.get("RequestParameters"), route_key=props["RouteKey"],
            route_response_selection_expression=props.get("RouteResponseSelectionExpression"),
            target=props.get("Target"))
        return api_id, made.route_id, made
    made = backend.create_stage(api_id, stage_config(props))
    return api_id, made.name, made


def _delete(kind: str, backend: Any, api_id: str, physical_id: str) -> None:
    if kind == "Api":
        backend.delete_api(physical_id)
        return
    api = backend.apis.get(api_id)
    if api is None:  # deleted with its API
        return
    {"Integration": api.delete_integration, "Route": api.delete_route,
     "Stage": api.delete_stage}[kind](physical_id)


def install() -> None:
    """Register the ``AWS::ApiGatewayV2`` ``Api``, ``Integration``, ``Route`` and ``Stage``
    models (idempotent)."""
    from moto.apigatewayv2.models import apigatewayv2_backends
    from moto.cloudformation.parsing import get_model_list, get_model_map, get_name_type_map
    from moto.core.common_models import CloudFormationModel

    if "AWS::ApiGatewayV2::Api" in get_model_map():
        return

    def model(kind: str) -> type:
        class CfnHttpApiPart(CloudFormationModel):
            """One ``AWS::ApiGatewayV2`` resource, kept in moto's apigatewayv2 backend."""

            def __init__(self, api_id: str, physical_id: str, made: Any) -> None:
                self.api_id, self.physical_id, self.made = api_id, physical_id, made

            @property
            def physical_resource_id(self) -> str:
                return self.physical_id

            @staticmethod
            def cloudformation_name_type() -> str:
                return "Name" if kind == "Api" else ""

            @staticmethod
            def cloudformation_type() -> str:
                return f"AWS::ApiGatewayV2::{kind}"

            @classmethod
            def has_cfn_attr(cls, attr: str) -> bool:
                return kind == "Api" and attr in ("ApiId", "ApiEndpoint")

            def get_cfn_attribute(self, attribute_name: str) -> str:
                from moto.cloudformation.exceptions import UnformattedGetAttTemplateException

                if kind == "Api" and attribute_name == "ApiEndpoint":
                    return str(self.made.api_endpoint)
                if kind == "Api" and attribute_name == "ApiId":
                    return self.api_id
                raise UnformattedGetAttTemplateException()

            @classmethod
            def create_from_cloudformation_json(  # type: ignore[override]
                cls, resource_name: str, cloudformation_json: dict[str, Any],
                account_id: str, region_name: str, **kwargs: Any,
            ) -> Any:
                backend = apigatewayv2_backends[account_id][region_name]
                props = dict(cloudformation_json.get("Properties") or {})
                if kind == "Api":
                    props.setdefault("Name", resource_name)
                return cls(*_create(kind, backend, props))

            @classmethod
            def update_from_cloudformation_json(  # type: ignore[override]
                cls, original_resource: Any, new_resource_name: str,
                cloudformation_json: dict[str, Any], account_id: str, region_name: str,
            ) -> Any:
                backend = apigatewayv2_backends[account_id][region_name]
                props = dict(cloudformation_json.get("Properties") or {})
                if kind == "Api":  # in place: the id and the URL stay
                    api = original_resource.made
                    api.name = props.get("Name", api.name)
                    api.description = props.get("Description", api.description)
                    return original_resource
                _delete(kind, backend, original_resource.api_id, original_resource.physical_id)
                return cls(*_create(kind, backend, props))

            @classmethod
            def delete_from_cloudformation_json(  # type: ignore[override]
                cls, resource_name: str, cloudformation_json: dict[str, Any],
                account_id: str, region_name: str,
            ) -> None:
                backend = apigatewayv2_backends[account_id][region_name]
                api_id = str((cloudformation_json.get("Properties") or {}).get("ApiId", ""))
                _delete(kind, backend, api_id, resource_name)

            def delete(self, account_id: str, region_name: str) -> None:
                _delete(kind, apigatewayv2_backends[account_id][region_name], self.api_id,
                        self.physical_id)

            def is_created(self) -> bool:
                return True

        CfnHttpApiPart.__name__ = f"CfnHttpApi{kind}"
        return CfnHttpApiPart

    _MODELS.extend(model(kind) for kind in ("Api", "Integration", "Route", "Stage"))
    get_model_list.cache_clear()
    get_model_map.cache_clear()
    get_name_type_map.cache_clear()
