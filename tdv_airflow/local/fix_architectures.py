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

    from tdv_airflow.local.cfn_hooks import run_after

    for method in ("create_from_cloudformation_json", "update_from_cloudformation_json"):
        run_after(LambdaFunction, method, _set_architectures, _MARK)
    run_after(LayerVersion, "create_from_cloudformation_json", _set_compatible_architectures,
              _MARK)


def _properties(cloudformation_json: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = cloudformation_json.get("Properties") or {}
    return properties


def _set_architectures(function: Any, cloudformation_json: dict[str, Any]) -> None:
    """Give ``function`` the template's ``Architectures`` (Lambda's default ``[x86_64]``
    when the template names none).

    :param function: a moto ``LambdaFunction``.
    :param cloudformation_json: the resource, intrinsic functions resolved.
    """
    function.architectures = list(_properties(cloudformation_json).get("Architectures")
                                  or ["x86_64"])


def _set_compatible_architectures(layer: Any, cloudformation_json: dict[str, Any]) -> None:
    """Give ``layer`` the template's ``CompatibleArchitectures`` (none when not named).

    :param layer: a moto ``LayerVersion``.
    :param cloudformation_json: the resource, intrinsic functions resolved.
    """
    layer.compatible_architectures = list(
        _properties(cloudformation_json).get("CompatibleArchitectures") or [])
