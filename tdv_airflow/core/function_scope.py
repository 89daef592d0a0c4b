"""What the function runs on and may read, as template parameters: its architecture,
the artifact bucket's KMS key, and the artifacts of the versions still retained.

**Architecture.** A dependency layer built for ``arm64`` holds aarch64 wheels, which only
import on an ``arm64`` function: the ``Architecture`` parameter sets the function's
``Architectures`` and the layers' ``CompatibleArchitectures`` from the prepare result.

**Retained artifacts.** The function's role may read only the model and pickle it serves
(``ModelKey``, ``PreproKey``, and ``DepsBundleKey`` when the dependencies are a bundle) and
those listed in ``RetainedArtifactArns``: the S3 object
ARNs of

- every artifact a published version still reads (``retained``: versions keep their
  configuration but share the role, and the alias may route to, or roll back to, any of
  them);
- the update window: the stack's current ``ModelKey``/``PreproKey``/``DepsBundleKey``
  when this update changes them. The function depends on the role, so on an update
  CloudFormation rewrites the role's policy before it updates the function; an execution
  environment that starts in between still runs the old configuration and would be
  refused its artifacts;
- when the update changes neither key (a retry, or a code or settings change), what the
  stack already grants as well, so that a retried or repeated update computes the same
  parameters, hence the same fingerprint; a pruned version's artifacts therefore stay
  readable until the next update that changes a key;

less the new ``ModelKey``, ``PreproKey`` and ``DepsBundleKey`` (the role reads them
anyway), sorted and without duplicates. On create there is no window: only what ``retained`` lists.

Exact object ARNs, no pattern, with three exceptions forced by the parameter type and
IAM's syntax: ``RetainedArtifactArns`` is a ``CommaDelimitedList``, which cannot hold a
comma, so a ``,`` in a key becomes ``?`` (IAM's one-character wildcard: the role may then
read the keys that differ from it in that one character only); a literal ``*``, ``?``
or ``$`` in a key is written ``${*}``, ``${?}``, ``${$}`` (IAM's policy variables for
those characters), so that it grants that key and no pattern. CloudFormation limits a
parameter value to 4,096 bytes: a longer list is refused (retain fewer versions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from tdv_airflow.core.encryption import KMS_KEY_PARAMETER
from tdv_airflow.exceptions import InvalidInputError

#: The template parameter giving the function's (and its layers') architecture.
ARCHITECTURE_PARAMETER = "Architecture"
#: The template parameter listing the object ARNs the role reads besides the current two.
RETAINED_PARAMETER = "RetainedArtifactArns"
#: The parameters naming the artifacts the function serves now (in ``ArtifactBucket``).
SERVED_PARAMETERS = ("ModelKey", "PreproKey", "DepsBundleKey")
#: Lambda's default architecture, which a template without ``Architecture`` runs on.
DEFAULT_ARCHITECTURE = "x86_64"
#: CloudFormation's limit on one parameter value, in bytes.
PARAMETER_VALUE_LIMIT = 4096
#: How a key's characters that IAM or the list would read otherwise are written.
_ESCAPES = {",": "?", "*": "${*}", "?": "${?}", "$": "${$}"}


def partition_of(region: str) -> str:
    """The partition of ``region``: ``aws-cn`` for ``cn-*``, ``aws-us-gov`` for
    ``us-gov-*``, else ``aws``.

    :param region: a region name, e.g. ``eu-west-1``.
    """
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def object_arn(bucket: str, key: str, partition: str = "aws") -> str:
    """The IAM resource naming one S3 object: ``arn:PARTITION:s3:::BUCKET/KEY``, with the
    key's ``,`` written ``?`` and its ``*``, ``?``, ``$`` as IAM's policy variables for them.

    :param bucket: the bucket.
    :param key: the object key.
    :param partition: ``aws``, ``aws-cn`` or ``aws-us-gov``.
    """
    escaped = "".join(_ESCAPES.get(c, c) for c in key)
    return f"arn:{partition}:s3:::{bucket}/{escaped}"


def parameters_of(stack: Mapping[str, Any] | None) -> dict[str, str]:
    """A described stack's parameters as ``{key: value}`` (empty for no stack).

    :param stack: a ``describe_stacks`` entry, or ``None``.
    """
    return {p["ParameterKey"]: p.get("ParameterValue", "")
            for p in (stack or {}).get("Parameters") or []}


def retained_arns(stack: Mapping[str, Any] | None, bucket: str, current: Mapping[str, str],
                  retained: Iterable[tuple[str, str]] = (), partition: str = "aws"
                  ) -> list[str]:
    """The ``RetainedArtifactArns`` of an update of ``stack`` to ``current`` (see the
    module doc).

    :param stack: the existing stack (``describe_stacks`` entry), or ``None`` to create.
    :param bucket: the artifact bucket of the new configuration.
    :param current: the new ``ModelKey``, ``PreproKey`` and ``DepsBundleKey`` (``""``: none).
    :param retained: ``(bucket, key)`` of every artifact a retained version reads.
    :param partition: the stack's partition.
    :returns: the object ARNs, sorted, without duplicates and without the current two.
    """
    arns = {object_arn(b, k, partition) for b, k in retained}
    served = parameters_of(stack)
    changed = [name for name in SERVED_PARAMETERS
               if served.get(name) and served[name] != current.get(name, "")]
    old_bucket = served.get("ArtifactBucket") or bucket
    arns |= {object_arn(old_bucket, served[name], partition) for name in changed}
    if stack is not None and not changed:  # a retry or a settings change: keep the grants
        arns |= {a for a in served.get(RETAINED_PARAMETER, "").split(",") if a}
    arns -= {object_arn(bucket, current[name], partition) for name in SERVED_PARAMETERS
             if current.get(name)}
    return sorted(arns)


def check_parameter_size(arns: list[str]) -> str:
    """``arns`` as one parameter value, if CloudFormation accepts its size.

    :param arns: the object ARNs.
    :raises InvalidInputError: when the comma-joined value passes
        :data:`PARAMETER_VALUE_LIMIT` bytes, naming the count and the size.
    """
    value = ",".join(arns)
    size = len(value.encode())
    if size > PARAMETER_VALUE_LIMIT:
        raise InvalidInputError(
            f"the function's role would have to keep reading {len(arns)} retained artifacts "
            f"({RETAINED_PARAMETER}: {size} bytes), more than CloudFormation's "
            f"{PARAMETER_VALUE_LIMIT}-byte limit on a parameter value: retain fewer versions "
            "(each keeps its model and pickle readable) or use shorter keys")
    return value


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


def scope_parameters(response: Mapping[str, Any], stack: Mapping[str, Any] | None = None,
                     retained: Iterable[tuple[str, str]] = (), region: str = "us-east-1"
                     ) -> dict[str, str]:
    """The architecture, KMS key and retained-artifact parameters the template declares.

    :param response: the prepare result (``bucket``, ``architecture``, ``kms_key_arn``,
        the keys and ``template_parameters``).
    :param stack: the existing stack, or ``None`` when it is to be created.
    :param retained: ``(bucket, key)`` of the artifacts that published versions still read
        (e.g. :func:`tdv_airflow.core.versions.retained_artifacts`).
    :param region: the stack's region (its partition goes into the ARNs).
    :raises InvalidInputError: see :func:`check_declared` and :func:`check_parameter_size`.
    """
    declared = set(response["template_parameters"])
    architecture = str(response.get("architecture") or DEFAULT_ARCHITECTURE)
    kms_key = str(response.get("kms_key_arn") or "")
    check_declared(declared, architecture, kms_key)
    values = {ARCHITECTURE_PARAMETER: architecture, KMS_KEY_PARAMETER: kms_key}
    if RETAINED_PARAMETER in declared:
        bundle = response.get("deps_bundle") or {}
        current = {"ModelKey": str(response["model_s3_key"]),
                   "PreproKey": str(response["s3_prepro_fn_location"]),
                   "DepsBundleKey": str(bundle.get("key") or "")}
        values[RETAINED_PARAMETER] = check_parameter_size(retained_arns(
            stack, str(response["bucket"]), current, retained, partition_of(region)))
    return {name: value for name, value in values.items() if name in declared}
