"""What the function runs on and may read, as template parameters: its architecture,
the artifact bucket's KMS key, and the previous configuration's artifact keys.

**Architecture.** A dependency layer built for ``arm64`` holds aarch64 wheels, which only
import on an ``arm64`` function: the ``Architecture`` parameter sets the function's
``Architectures`` and the layers' ``CompatibleArchitectures`` from the prepare result.

**Previous keys.** The function's role may read only the model and pickle it serves. The
function depends on the role, so on an update CloudFormation rewrites the role's policy
before it updates the function; an execution environment that starts in between still
runs the old configuration and would be refused its artifacts. The role therefore also
reads the previous configuration's two keys (``PreviousModelKey``,
``PreviousPreproKey``), exactly those and no pattern. Each is what the stack served
before this update: the stack's current key when this update changes it, else the
previous key the stack already grants (so a retried or repeated update computes the same
parameters, hence the same fingerprint). On create they equal the new keys, which grants
nothing more. The previous key stops being readable with the next update that changes
that key again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tdv_airflow.core.encryption import KMS_KEY_PARAMETER
from tdv_airflow.exceptions import InvalidInputError

#: The template parameter giving the function's (and its layers') architecture.
ARCHITECTURE_PARAMETER = "Architecture"
#: Previous-key parameter -> the parameter whose previous value it holds.
PREVIOUS_PARAMETERS = {"PreviousModelKey": "ModelKey", "PreviousPreproKey": "PreproKey"}
#: Lambda's default architecture, which a template without ``Architecture`` runs on.
DEFAULT_ARCHITECTURE = "x86_64"


def parameters_of(stack: Mapping[str, Any] | None) -> dict[str, str]:
    """A described stack's parameters as ``{key: value}`` (empty for no stack).

    :param stack: a ``describe_stacks`` entry, or ``None``.
    """
    return {p["ParameterKey"]: p.get("ParameterValue", "")
            for p in (stack or {}).get("Parameters") or []}


def previous_keys(stack: Mapping[str, Any] | None, current: Mapping[str, str]
                  ) -> dict[str, str]:
    """The previous-key parameters for an update of ``stack`` to ``current``.

    :param stack: the existing stack (``describe_stacks`` entry), or ``None`` to create.
    :param current: the new ``ModelKey`` and ``PreproKey``.
    :returns: ``PreviousModelKey`` and ``PreviousPreproKey``.
    """
    served = parameters_of(stack)
    previous = {}
    for name, parameter in PREVIOUS_PARAMETERS.items():
        new = current[parameter]
        old = served.get(parameter)
        if not old:
            previous[name] = new
        elif old != new:
            previous[name] = old
        else:  # this key does not change: keep what the stack already grants
            previous[name] = served.get(name) or new
    return previous


def check_declared(declared: Any, architecture: str, kms_key_arn: str | None) -> None:
    """Fail when the deployment needs a parameter the template does not declare: an
    ``arm64`` function needs ``Architecture``, a KMS-encrypted bucket ``ArtifactKmsKeyArn``.

    :param declared: the template's parameter names.
    :param architecture: the function's architecture.
    :param kms_key_arn: the bucket's KMS key, if any.
    :raises InvalidInputError: naming the parameter and why it is needed.
    """
    for parameter, needed, why in (
            (ARCHITECTURE_PARAMETER, architecture != DEFAULT_ARCHITECTURE,
             f"the dependency layer is built for {architecture}"),
            (KMS_KEY_PARAMETER, bool(kms_key_arn),
             f"the artifact bucket encrypts with the KMS key {kms_key_arn}, which the "
             "function's role must be allowed to decrypt with")):
        if needed and parameter not in declared:
            raise InvalidInputError(
                f"the template does not declare the parameter {parameter!r}, which this "
                f"deployment needs ({why}); add it (see the shipped "
                "templates/stack_template.json)")


def scope_parameters(response: Mapping[str, Any], stack: Mapping[str, Any] | None = None
                     ) -> dict[str, str]:
    """The architecture, KMS key and previous-key parameters the template declares.

    :param response: the prepare result (``architecture``, ``kms_key_arn``, the keys and
        ``template_parameters``).
    :param stack: the existing stack, or ``None`` when it is to be created.
    :raises InvalidInputError: see :func:`check_declared`.
    """
    declared = set(response["template_parameters"])
    architecture = str(response.get("architecture") or DEFAULT_ARCHITECTURE)
    kms_key = str(response.get("kms_key_arn") or "")
    check_declared(declared, architecture, kms_key)
    current = {"ModelKey": str(response["model_s3_key"]),
               "PreproKey": str(response["s3_prepro_fn_location"])}
    values = {ARCHITECTURE_PARAMETER: architecture, KMS_KEY_PARAMETER: kms_key,
              **previous_keys(stack, current)}
    return {name: value for name, value in values.items() if name in declared}
