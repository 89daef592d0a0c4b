"""Emulator fidelity: a function's ``EphemeralStorage`` and ``SnapStart`` in moto's
CloudFormation.

On AWS, ``AWS::Lambda::Function`` ``EphemeralStorage.Size`` (512 to 10,240 MB) sizes the
function's ``/tmp`` and ``SnapStart.ApplyOn`` (``PublishedVersions`` or ``None``) turns
SnapStart on for its published versions; ``GetFunctionConfiguration`` returns both
(``SnapStart: {ApplyOn, OptimizationStatus}``, the status ``On`` for a published version
of a function with SnapStart, ``Off`` otherwise), and a stack update that changes them
changes the function. moto 5.2.5's CloudFormation model passes neither on: every
function has 512 MB and ``SnapStart`` ``ApplyOn: None`` in its configuration, whatever
the stack asks.
:func:`install` applies both after moto creates (or updates) the function, and reports
``SnapStart`` in its configuration. Nothing else changes.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

from typing import Any

_MARK = "_tdv_sets_function_settings"
#: Where the fix keeps a function's ``SnapStart.ApplyOn``.
SNAP_START_ATTRIBUTE = "_tdv_snap_start_apply_on"


def install() -> None:
    """Pass ``EphemeralStorage`` and ``SnapStart`` on (idempotent)."""
    from moto.awslambda.models import LambdaFunction

    from tdv_airflow.local.cfn_hooks import run_after

    for method in ("create_from_cloudformation_json", "update_from_cloudformation_json"):
        run_after(LambdaFunction, method, _apply, _MARK)
    moto_configuration = LambdaFunction.get_configuration
    if getattr(moto_configuration, _MARK, False):
        return

    def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
        config: dict[str, Any] = moto_configuration(self, on_create)
        apply_on = getattr(self, SNAP_START_ATTRIBUTE, "None")
        on = apply_on == "PublishedVersions" and str(self.version) != "$LATEST"
        config["SnapStart"] = {"ApplyOn": apply_on, "OptimizationStatus": "On" if on else "Off"}
        return config

    setattr(get_configuration, _MARK, True)
    LambdaFunction.get_configuration = get_configuration  # type: ignore[method-assign]


def _apply(function: Any, cloudformation_json: dict[str, Any]) -> None:
    """Give ``function`` the template's ephemeral storage (512 MB when not named) and
    SnapStart setting (``None`` when not named).

    :param function: a moto ``LambdaFunction``.
    :param cloudformation_json: the resource, intrinsic functions resolved.
    """
    properties = cloudformation_json.get("Properties") or {}
    function.ephemeral_storage = int((properties.get("EphemeralStorage") or {}).get("Size")
                                     or 512)
    setattr(function, SNAP_START_ATTRIBUTE,
            str((properties.get("SnapStart") or {}).get("ApplyOn") or "None"))
