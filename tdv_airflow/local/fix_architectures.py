"""Emulator fidelity: a function's ``Architectures`` and a layer's
``CompatibleArchitectures`` in moto's CloudFormation.

On AWS, ``AWS::Lambda::Function`` ``Architectures`` (``[x86_64]`` or ``[arm64]``) sets the
instruction set the function runs on, and ``AWS::Lambda::LayerVersion``
``CompatibleArchitectures`` is returned by ``GetLayerVersion``; a stack update that
changes the function's ``Architectures`` changes it. moto 5.2's CloudFormation models
pass neither property on: every function is ``x86_64`` and every layer lists no
architecture, so a stack that asks for ``arm64`` looks the same as one that does not.
:func:`install` applies both properties after moto creates (or updates) the resource, as
AWS does. Nothing else in moto changes.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

from typing import Any

_MARK = "_tdv_sets_architectures"


def install() -> None:
    """Pass ``Architectures`` and ``CompatibleArchitectures`` on (idempotent)."""
    from moto.awslambda.models import LambdaFunction, LayerVersion

    if getattr(LambdaFunction.create_from_cloudformation_json, _MARK, False):
        return
    create_function = LambdaFunction.create_from_cloudformation_json
    update_function = LambdaFunction.update_from_cloudformation_json
    create_layer = LayerVersion.create_from_cloudformation_json

    def function_created(cls: type, resource_name: str, cloudformation_json: dict[str, Any],
                         account_id: str, region_name: str, **kwargs: Any) -> Any:
        function = create_function.__func__(  # type: ignore[attr-defined]
            cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        _set_architectures(function, cloudformation_json)
        return function

    def function_updated(cls: type, original_resource: Any, new_resource_name: str,
                         cloudformation_json: dict[str, Any], account_id: str,
                         region_name: str) -> Any:
        function = update_function.__func__(  # type: ignore[attr-defined]
            cls, original_resource, new_resource_name, cloudformation_json, account_id,
            region_name)
        _set_architectures(function, cloudformation_json)
        return function

    def layer_created(cls: type, resource_name: str, cloudformation_json: dict[str, Any],
                      account_id: str, region_name: str, **kwargs: Any) -> Any:
        layer = create_layer.__func__(  # type: ignore[attr-defined]
            cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        properties = cloudformation_json.get("Properties") or {}
        layer.compatible_architectures = list(properties.get("CompatibleArchitectures") or [])
        return layer

    setattr(function_created, _MARK, True)
    LambdaFunction.create_from_cloudformation_json = classmethod(  # type: ignore[method-assign,assignment]
        function_created)
    LambdaFunction.update_from_cloudformation_json = classmethod(  # type: ignore[method-assign,assignment]
        function_updated)
    LayerVersion.create_from_cloudformation_json = classmethod(  # type: ignore[method-assign,assignment]
        layer_created)


def _set_architectures(function: Any, cloudformation_json: dict[str, Any]) -> None:
    """Give ``function`` the template's ``Architectures`` (Lambda's default ``[x86_64]``
    when the template names none).

    :param function: a moto ``LambdaFunction``.
    :param cloudformation_json: the resource, intrinsic functions resolved.
    """
    properties = cloudformation_json.get("Properties") or {}
    function.architectures = list(properties.get("Architectures") or ["x86_64"])
