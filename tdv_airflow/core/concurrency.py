"""Provisioned concurrency on the alias ``live``.

The template declares no alias (the core owns ``live``, see ``docs/rollout.md``), so it
cannot carry a provisioned concurrency configuration either: the stack carries the wanted
number in its ``ProvisionedConcurrency`` parameter (echoed as an output of that name),
and :func:`ensure_provisioned_concurrency` applies it on the alias once the alias exists,
at every live step. Lambda keeps that many execution environments initialised for the
versions the alias routes to (split by their weights); ``0`` removes the configuration.

Lambda takes 1 or more (``PutProvisionedConcurrencyConfig``), on a version or an alias,
never on ``$LATEST``; allocation is asynchronous (``IN_PROGRESS`` until ``READY``).
"""

from __future__ import annotations

from typing import Any

from tdv_airflow.exceptions import InvalidInputError

#: The alias the core owns and routes traffic through.
LIVE_ALIAS = "live"


def _not_found(error: Exception) -> bool:
    """Whether a botocore ``ClientError`` says there is no configuration."""
    code = getattr(error, "response", {}).get("Error", {}).get("Code")
    return code == "ProvisionedConcurrencyConfigNotFoundException"


def provisioned_concurrency_status(lam: Any, function_name: str, alias: str = LIVE_ALIAS
                                   ) -> dict[str, Any] | None:
    """The alias's provisioned concurrency, ``None`` when it has none.

    :param lam: a boto3 Lambda client.
    :param function_name: the function's name.
    :param alias: the alias (or version) it applies to.
    :returns: ``requested``, ``allocated``, ``available`` (execution environments),
        ``status`` (``IN_PROGRESS``, ``READY`` or ``FAILED``) and ``reason``.
    """
    from botocore.exceptions import ClientError

    try:
        config = lam.get_provisioned_concurrency_config(FunctionName=function_name,
                                                        Qualifier=alias)
    except ClientError as error:
        if _not_found(error):
            return None
        raise
    return {"requested": config.get("RequestedProvisionedConcurrentExecutions"),
            "allocated": config.get("AllocatedProvisionedConcurrentExecutions"),
            "available": config.get("AvailableProvisionedConcurrentExecutions"),
            "status": config.get("Status"), "reason": config.get("StatusReason")}


def ensure_provisioned_concurrency(lam: Any, function_name: str, wanted: int,
                                   alias: str = LIVE_ALIAS) -> str:
    """Make the alias's provisioned concurrency ``wanted``, idempotently.

    Reads the configuration first; puts it only when it differs, deletes it for ``0``
    when one exists.

    :param lam: a boto3 Lambda client.
    :param function_name: the function's name.
    :param wanted: execution environments to keep initialised (``0``: none).
    :param alias: the alias (default ``live``).
    :returns: what it did: ``"unchanged"``, ``"put"``, ``"deleted"`` or ``"none"``
        (0 wanted, none configured).
    :raises InvalidInputError: when ``wanted`` is not an integer of at least 0.
    """
    if isinstance(wanted, bool) or not isinstance(wanted, int) or wanted < 0:
        raise InvalidInputError(f"invalid provisioned concurrency {wanted!r}: expected an "
                                "integer of at least 0 (0 for none)")
    current = provisioned_concurrency_status(lam, function_name, alias)
    if wanted == 0:
        if current is None:
            return "none"
        lam.delete_provisioned_concurrency_config(FunctionName=function_name, Qualifier=alias)
        return "deleted"
    if current is not None and current["requested"] == wanted:
        return "unchanged"
    lam.put_provisioned_concurrency_config(FunctionName=function_name, Qualifier=alias,
                                           ProvisionedConcurrentExecutions=wanted)
    return "put"


def wanted_of(stack: Any) -> int:
    """The provisioned concurrency a stack asks for (its ``ProvisionedConcurrency``
    output, else parameter; 0 when it has neither).

    :param stack: a ``describe_stacks`` entry.
    """
    for output in stack.get("Outputs") or []:
        if output.get("OutputKey") == "ProvisionedConcurrency":
            return int(output.get("OutputValue") or 0)
    for parameter in stack.get("Parameters") or []:
        if parameter.get("ParameterKey") == "ProvisionedConcurrency":
            return int(parameter.get("ParameterValue") or 0)
    return 0
