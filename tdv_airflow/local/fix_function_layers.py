"""Emulator fidelity: a function's layers in moto's CloudFormation, created and replaced as
on AWS.

* **A function is created with its layers.** On AWS, ``AWS::Lambda::Function``
  ``Layers`` are the layer version ARNs ``$LATEST`` is created with, and a version
  published from it keeps them. moto 5.2.5's create passes ``Layers`` on to nothing (only
  a stack update does), so a stack's function starts with no layers and gets them at its
  first update. :func:`install` attaches them after moto creates the function.
* **A changed layer version is replaced.** Every property of
  ``AWS::Lambda::LayerVersion`` (``Content``, ``LayerName``, ``Description``,
  ``CompatibleRuntimes``, ``CompatibleArchitectures``, ``LicenseInfo``) requires
  replacement: CloudFormation publishes a new version (``Ref`` is its ARN), updates the
  resources that refer to it, then deletes the old version unless its
  ``UpdateReplacePolicy`` is ``Retain`` (the default is ``Delete``); a function version
  that uses the old version keeps it (Lambda keeps a copy until no function refers to it).
  A layer version whose condition turns false is deleted unless its ``DeletionPolicy`` is
  ``Retain``. moto 5.2.5 has no update for a layer version: the resource becomes ``None``,
  its ``Ref`` nothing, and the function loses the layer at that update and every later
  one (the shipped template's dependency layer, whose ``DepsLayerKey`` changes with the
  model's dependencies). :func:`install` gives the model that update: a new version of
  the same layer (moto names a stack's layer after the stack and the logical id, not its
  ``LayerName``; a changed ``LayerName`` makes a new layer), the old version deleted as
  the policy says; unchanged properties leave it as it is. moto updates a stack's
  resources in the template's order: the shipped template lists its layers before the
  function (``tests/templates/test_layer_updates.py`` checks it).
* **A layer version is read by its ARN.** Lambda's ``GetLayerVersionByArn`` answers a
  layer version's details (``ResourceNotFoundException`` for one that does not exist, or
  no longer); moto 5.2.5 answers a 500 (the action is not implemented), which a client
  retries. :func:`install` answers it from moto's layers, as ``GetLayerVersion`` does.

AWS: https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-lambda-layerversion.html
(each property: "Update requires: Replacement"; ``Ref``: the version's ARN),
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-attribute-updatereplacepolicy.html,
https://docs.aws.amazon.com/lambda/latest/api/API_DeleteLayerVersion.html ("To avoid
breaking functions, a copy of the version remains in Lambda until no functions refer to
it"), https://docs.aws.amazon.com/lambda/latest/api/API_GetLayerVersionByArn.html.
:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

from typing import Any

_MARK = "_tdv_function_layers"
#: Where the fix keeps a layer version's resolved template properties.
PROPERTIES_ATTRIBUTE = "_tdv_layer_properties"
LAYER_TYPE = "AWS::Lambda::LayerVersion"


def install() -> None:
    """Attach a created function's layers, replace changed layer versions, answer
    ``GetLayerVersionByArn`` (idempotent)."""
    from moto.awslambda.models import LambdaFunction, LayerVersion
    from moto.awslambda.responses import LambdaResponse
    from moto.cloudformation import parsing

    from tdv_airflow.local.cfn_hooks import run_after

    run_after(LambdaFunction, "create_from_cloudformation_json", _attach_layers, _MARK)
    run_after(LayerVersion, "create_from_cloudformation_json", _remember, _MARK)
    if getattr(parsing.parse_and_update_resource, _MARK, False):
        return
    moto_update = parsing.parse_and_update_resource

    def parse_and_update_resource(logical_id: str, resource_json: dict[str, Any],
                                  resources_map: Any, account_id: str, region_name: str
                                  ) -> Any:
        condition = resource_json.get("Condition")
        if (resource_json.get("Type") == LAYER_TYPE and condition
                and not resources_map.lazy_condition_map[condition]):
            old = resources_map._parsed_resources.get(logical_id)
            if old is not None and resource_json.get("DeletionPolicy") != "Retain":
                _delete(old)
            return None
        return moto_update(logical_id, resource_json, resources_map, account_id, region_name)

    def replace(cls: type, original_resource: Any, new_resource_name: str,
                cloudformation_json: dict[str, Any], account_id: str,
                region_name: str) -> Any:
        properties = cloudformation_json.get("Properties") or {}
        before = getattr(original_resource, PROPERTIES_ATTRIBUTE, None)
        if original_resource is not None and before == properties:
            return original_resource  # nothing changed: no replacement
        same_layer = (original_resource is not None and before is not None
                      and before.get("LayerName") == properties.get("LayerName"))
        name = original_resource.name if same_layer else new_resource_name
        replacement = cls.create_from_cloudformation_json(  # type: ignore[attr-defined]
            name, cloudformation_json, account_id, region_name)
        if (original_resource is not None
                and cloudformation_json.get("UpdateReplacePolicy") != "Retain"):
            _delete(original_resource)
        return replacement

    setattr(parse_and_update_resource, _MARK, True)
    parsing.parse_and_update_resource = parse_and_update_resource
    LayerVersion.update_from_cloudformation_json = classmethod(replace)  # type: ignore[method-assign,assignment]
    LambdaResponse.get_layer_version_by_arn = _get_layer_version_by_arn  # type: ignore[attr-defined]


def _get_layer_version_by_arn(self: Any) -> str:
    """``GetLayerVersionByArn`` on moto's ``LambdaResponse`` (``?find=LayerVersion&Arn=``).

    :param self: moto's ``LambdaResponse``.
    """
    import json

    from moto.awslambda.exceptions import UnknownLayerVersionException

    arn = str((self.querystring.get("Arn") or [""])[0])
    version = self.backend.layers_versions_by_arn(arn) if arn.count(":") == 7 else None
    if version is None:
        raise UnknownLayerVersionException([arn])
    return json.dumps(version.get_layer_version())


def _attach_layers(function: Any, cloudformation_json: dict[str, Any]) -> None:
    """Give a created ``function`` the template's ``Layers`` (ARNs Lambda must know).

    :param function: a moto ``LambdaFunction``.
    :param cloudformation_json: the resource, intrinsic functions resolved.
    """
    layers = (cloudformation_json.get("Properties") or {}).get("Layers")
    if layers:
        function.layers = function._get_layers_data(list(layers))


def _remember(layer: Any, cloudformation_json: dict[str, Any]) -> None:
    """Keep the resolved properties ``layer`` was published with (to tell a change).

    :param layer: a moto ``LayerVersion``.
    :param cloudformation_json: the resource, intrinsic functions resolved.
    """
    setattr(layer, PROPERTIES_ATTRIBUTE, dict(cloudformation_json.get("Properties") or {}))


def _delete(layer: Any) -> None:
    """Delete a layer version, as ``DeleteLayerVersion`` does.

    :param layer: a moto ``LayerVersion``.
    """
    from moto.awslambda.models import lambda_backends

    backend = lambda_backends[layer.account_id][layer.region]
    backend.delete_layer_version(layer.name, str(layer.version))
