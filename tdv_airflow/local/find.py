"""Finding a deployed function from its stack, and where its code and layers come from.

Given a stack, :func:`find_function` finds its function (the stack output
``FunctionName``, else its single ``AWS::Lambda::Function`` resource,
:func:`function_name_of`), reads the configuration of ``$LATEST`` or of the version or
alias it is given (``get_function`` with ``Qualifier``: a published version is
immutable, with its own code, layers and environment) and says where each zip is
fetched from, with the digest it must have:

- the code: ``get_function`` ``Code.Location`` when it is a presigned URL, as on AWS;
  else the S3 key of the configuration's own ``TDV_CODE_KEY`` in ``ArtifactBucket`` (the
  emulator's location is not one);
- the layers: the configuration's ``Layers`` through ``get_layer_version_by_arn``, as on
  AWS; when the configuration lists none (an emulator that ignores layers, before
  :mod:`tdv_airflow.local.fix_function_layers`), the keys ``TDV_LAYER_KEY`` and
  ``TDV_DEPS_LAYER_KEY`` and the stack's ``ExtraLayerArns``;
- the digests: the configuration's ``CodeSha256``, the layer versions' ``CodeSha256``,
  and the ``TDV_CODE_SHA256``, ``TDV_LAYER_SHA256`` and ``TDV_DEPS_LAYER_SHA256``
  environment variables the stack set.

A configuration without the key variables (a stack deployed before they existed) takes
the stack's ``CodeKey``, ``LayerKey`` and ``DepsLayerKey`` parameters, for ``$LATEST``
always (the stack's own configuration), for a version only for the artifacts whose digest
is the stack's current one: keys are content-addressed, so the same digest is the same
object. Any other version cannot be laid out, and the error names it.
"""

from __future__ import annotations

import ast
import base64
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.front_door_aws import front_door_of, function_url
from tdv_airflow.core.stacks import describe, outputs_of
from tdv_airflow.exceptions import (
    InvalidInputError,
    LocalRunError,
    StackNotFoundError,
    UnknownVersionError,
)

#: The unpublished configuration CloudFormation updates.
LATEST = "$LATEST"
_VERSION_RE = re.compile(r"^[1-9][0-9]*$")
_ALIAS_RE = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True)
class Source:
    """Where one zip (the code or a layer) is fetched from, and its expected digest.

    :param name: what it is, for messages (``"function code"``, ``"layer 1 (...)"``).
    :param sha256: the expected lowercase hex SHA-256, when known.
    :param bucket: its S3 bucket, when fetched from S3.
    :param key: its S3 key, when fetched from S3.
    :param url: its (presigned) URL, when fetched over HTTPS.
    :param fallback: another source of the same bytes, tried when this one fails.
    """

    name: str
    sha256: str | None
    bucket: str | None = None
    key: str | None = None
    url: str | None = None
    fallback: Source | None = None


@dataclass
class DeployedFunction:
    """A deployed function, as found from its stack.

    :param stack_name: the stack.
    :param function_name: the function's name.
    :param function_arn: the function's ARN.
    :param handler: the handler, e.g. ``lbd_request_processor.handler``.
    :param runtime: e.g. ``python3.11``.
    :param timeout: the function's timeout in seconds.
    :param memory_size: the function's memory in MB.
    :param environment: the function's environment variables.
    :param code: where its code comes from.
    :param layers: where its layers come from, in order.
    :param api_id: the API's id (a function URL's URL id) for events, if known.
    :param stage_name: the API stage (for events).
    :param front_door: ``"rest"``, ``"http"`` or ``"url"`` (the stack's ``FrontDoor``
        output): which event a request becomes.
    :param region: the region.
    :param version: the version whose configuration this is (``"$LATEST"``, ``"3"``).
    :param invoked_arn: the ARN the function is invoked by: unqualified for ``$LATEST``
        (as the stack's API did before the live alias), else qualified by the version or
        alias asked for (the handler's ``context.invoked_function_arn``).
    """

    stack_name: str
    function_name: str
    function_arn: str
    handler: str
    runtime: str
    timeout: float
    memory_size: int
    environment: dict[str, str]
    code: Source
    layers: list[Source]
    api_id: str = "local"
    stage_name: str = "prod"
    region: str = "us-east-1"
    version: str = LATEST
    invoked_arn: str = ""
    front_door: str = "rest"

    @property
    def account_id(self) -> str:
        """The account in the function's ARN (API Gateway's example account without one)."""
        parts = self.function_arn.split(":")
        return parts[4] if len(parts) > 4 and parts[4] else "123456789012"


def is_version(qualifier: str) -> bool:
    """Whether a qualifier names a version (a number or ``$LATEST``), not an alias.

    :param qualifier: a checked qualifier (:func:`check_qualifier`).
    """
    return qualifier == LATEST or bool(_VERSION_RE.match(qualifier))


def check_qualifier(qualifier: Any) -> str:
    """Return a Lambda qualifier (a version number, ``$LATEST`` or an alias name).

    :param qualifier: what the caller gave.
    :raises InvalidInputError: for anything else, naming it.
    """
    text = str(qualifier).strip() if isinstance(qualifier, (int, str)) else ""
    if isinstance(qualifier, bool) or not (text == LATEST or _VERSION_RE.match(text)
                                           or (_ALIAS_RE.match(text) and not text.isdigit())):
        raise InvalidInputError(f"invalid qualifier {qualifier!r}: expected a published "
                                "version number (1, 2, ...), '$LATEST' or an alias name "
                                "(letters, digits, '-', '_'; 1-128 characters)")
    return text


def unqualified_arn(arn: str) -> str:
    """A function ARN without its version or alias.

    :param arn: ``arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]``.
    """
    return ":".join(arn.split(":")[:7])


def function_name_of(clients: AwsClients, stack: Mapping[str, Any]) -> str:
    """The stack's prediction function: its ``FunctionName`` output, else its single
    ``AWS::Lambda::Function`` (``PredictFunction`` first).

    :param clients: clients of the stack's account and region.
    :param stack: the stack's ``describe_stacks`` entry.
    :raises LocalRunError: when the stack has no single function.
    """
    name = outputs_of(stack).get("FunctionName")
    if name:
        return name
    stack_name = stack["StackName"]
    resources = clients.cloudformation.describe_stack_resources(
        StackName=stack_name)["StackResources"]
    functions = [r for r in resources if r.get("ResourceType") == "AWS::Lambda::Function"
                 and r.get("PhysicalResourceId")]
    preferred = [r for r in functions if r.get("LogicalResourceId") == "PredictFunction"]
    chosen = preferred or functions
    if len(chosen) != 1:
        raise LocalRunError(f"stack {stack_name!r} has {len(functions)} Lambda functions "
                            "and no FunctionName output: cannot tell which to run")
    return str(chosen[0]["PhysicalResourceId"])


def described(clients: AwsClients, stack_name: str) -> dict[str, Any]:
    """The stack's ``describe_stacks`` entry.

    :param clients: clients of the stack's account and region.
    :param stack_name: the stack's name or id.
    :raises StackNotFoundError: when the stack does not exist.
    """
    stack = describe(clients.cloudformation, stack_name)
    if stack is None:
        raise StackNotFoundError(stack_name)
    return stack


def _b64_to_hex(digest: str | None) -> str | None:
    if not digest:
        return None
    try:
        return base64.b64decode(digest).hex()
    except ValueError:
        return None


def _is_presigned(url: str | None) -> bool:
    if not url or not url.startswith("https://"):
        return False
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    return "X-Amz-Signature" in query or "Signature" in query


def _parse_arn_list(value: str | None) -> list[str]:
    """A ``CommaDelimitedList`` parameter's value (the emulator shows a Python repr)."""
    if not value:
        return []
    text = value.strip()
    if text.startswith("["):
        try:
            items = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            items = text.strip("[]").split(",")
        return [str(i).strip().strip("'\"") for i in items if str(i).strip()]
    return [part.strip() for part in text.split(",") if part.strip()]


def _layer_by_arn(clients: AwsClients, arn: str, name: str,
                  fallback: Source | None = None) -> Source:
    try:
        version = clients.lambda_.get_layer_version_by_arn(Arn=arn)
    except Exception:  # botocore ClientError (the emulator answers 500), connection errors
        layer, _, number = arn.rpartition(":")
        try:
            version = clients.lambda_.get_layer_version(LayerName=layer,
                                                        VersionNumber=int(number))
        except Exception as exc:
            if fallback is not None:
                return fallback
            raise LocalRunError(f"cannot read {name} {arn}: {exc}") from exc
    content = version.get("Content") or {}
    sha256 = _b64_to_hex(content.get("CodeSha256"))
    if fallback is not None and fallback.sha256 != sha256:
        fallback = None  # not the same bytes: no substitute
    return Source(name=f"{name} ({arn})", sha256=sha256, url=content.get("Location"),
                  fallback=fallback)


@dataclass(frozen=True)
class _Keys:
    """Where a configuration's artifacts are in the artifact bucket: its own ``TDV_*_KEY``
    variables, else the stack's key parameters where the stack may stand in for it.

    :param env: the configuration's environment.
    :param params: the stack's parameters.
    :param stack_name: the stack.
    :param bucket: the artifact bucket.
    :param what: the configuration, for messages (``version 3 of 'fn'``).
    :param strict: a published version: the stack stands in only for an artifact whose
        digest is the stack's current one (``$LATEST`` is the stack's own).
    """

    env: Mapping[str, str]
    params: Mapping[str, str]
    stack_name: str
    bucket: str | None
    what: str
    strict: bool

    def source(self, name: str, var: str, param: str, sha: str | None = None, *,
               needed: bool = True) -> Source | None:
        """The S3 source of one artifact, or ``None`` when there is none to fetch.

        :param name: the artifact, for messages.
        :param var: its variables' stem: ``TDV_CODE`` for ``TDV_CODE_KEY``/``_SHA256``.
        :param param: its parameters' stem: ``Code`` for ``CodeKey``/``CodeSha256``.
        :param sha: the digest it must have (default: the variable's, else the parameter's).
        :param needed: whether it has no other source (else an unknown key is ``None``).
        :raises LocalRunError: when a needed artifact of a version names no key and is
            not the stack's.
        """
        own_sha = self.env.get(f"{var}_SHA256")
        stack_key, stack_sha = self.params.get(f"{param}Key"), self.params.get(f"{param}Sha256")
        key = self.env.get(f"{var}_KEY")
        if not key:
            if self.strict and not (stack_key and own_sha == stack_sha):
                if not needed:
                    return None
                raise LocalRunError(
                    f"{self.what} names no {var}_KEY and its {name} ({var}_SHA256 "
                    f"{own_sha or 'unset'}) is not the one stack {self.stack_name!r} "
                    f"deploys now ({param}Sha256 {stack_sha or 'unset'}): where its "
                    "artifacts are is unknown, so it cannot be run locally")
            key = stack_key
        expected = sha or own_sha or (None if self.strict else stack_sha)
        return Source(name, expected or None, bucket=self.bucket, key=key) \
            if self.bucket and key else None


def _configuration(clients: AwsClients, function_name: str, stack_name: str,
                   qualifier: str | None) -> dict[str, Any]:
    if qualifier is None:
        return dict(clients.lambda_.get_function(FunctionName=function_name))
    try:
        return dict(clients.lambda_.get_function(FunctionName=function_name,
                                                 Qualifier=qualifier))
    except clients.lambda_.exceptions.ResourceNotFoundException as exc:
        raise UnknownVersionError(
            f"function {function_name!r} of stack {stack_name!r} has no version or alias "
            f"{qualifier!r}: {exc}") from exc


def find_function(clients: AwsClients, stack_name: str,
                  qualifier: str | None = None) -> DeployedFunction:
    """Find a stack's function, ``$LATEST`` or a version or alias of it, and where its
    code and layers come from.

    :param clients: boto3 clients of the stack's account and region.
    :param stack_name: the stack's name or id.
    :param qualifier: a version number, ``$LATEST`` or an alias (its version, not its
        weights); ``None``: ``$LATEST`` as the stack deploys it.
    :raises StackNotFoundError: when the stack does not exist.
    :raises UnknownVersionError: when the function has no such version or alias.
    :raises LocalRunError: when it has no (single) function, or a version's artifacts
        cannot be found.
    """
    if qualifier is not None:
        qualifier = check_qualifier(qualifier)
    stack = described(clients, stack_name)
    outputs = outputs_of(stack)
    params = {p["ParameterKey"]: p.get("ParameterValue", "")
              for p in stack.get("Parameters") or []}
    function_name = function_name_of(clients, stack)
    got = _configuration(clients, function_name, stack_name, qualifier)
    config = got["Configuration"]
    env = dict((config.get("Environment") or {}).get("Variables") or {})
    bucket = params.get("ArtifactBucket") or env.get("TDV_BUCKET")
    version = str(config.get("Version") or LATEST)
    what = f"version {version} of {function_name!r}" + (
        f" (alias {qualifier!r})" if qualifier and not is_version(qualifier) else "")
    keys = _Keys(env, params, stack_name, bucket, what,
                 strict=qualifier is not None and version != LATEST)

    code_sha = _b64_to_hex(config.get("CodeSha256"))
    location = (got.get("Code") or {}).get("Location")
    presigned = _is_presigned(location)  # AWS: the keys are only a fallback
    code_fallback = keys.source("function code", "TDV_CODE", "Code", code_sha,
                                needed=not presigned)
    if presigned:
        code = Source("function code", code_sha, url=location, fallback=code_fallback)
    elif code_fallback is not None:
        code = code_fallback
    else:
        raise LocalRunError(f"cannot fetch the code of {what}: its location "
                            f"{location!r} is not a presigned URL and stack {stack_name!r} "
                            "has no ArtifactBucket/CodeKey parameters")
    if code_sha and env.get("TDV_CODE_SHA256") and code_sha != env["TDV_CODE_SHA256"]:
        raise LocalRunError(f"{what} runs code {code_sha}, but its stack "
                            f"deployed {env['TDV_CODE_SHA256']}: it was changed outside "
                            "CloudFormation")

    configured = [layer["Arn"] for layer in config.get("Layers") or []]
    dill = keys.source("dill layer", "TDV_LAYER", "Layer", needed=not configured)
    has_deps = not keys.strict or "TDV_DEPS_LAYER_SHA256" in env or "TDV_DEPS_LAYER_KEY" in env
    deps = keys.source("dependency layer", "TDV_DEPS_LAYER", "DepsLayer",
                       needed=not configured) if has_deps else None
    by_keys = [s for s in (dill, deps) if s is not None]
    extra_arns = _parse_arn_list(params.get("ExtraLayerArns"))

    if configured:  # AWS: the layers exactly as attached, by ARN
        # The stack's layers, in the template's order, back up the first ones.
        backups: list[Source | None] = [*by_keys, *([None] * len(configured))]
        layers = [_layer_by_arn(clients, arn, f"layer {i + 1}", backups[i])
                  for i, arn in enumerate(configured)]
    else:  # an emulator that keeps no layers on the function: use the keys
        layers = by_keys + [_layer_by_arn(clients, arn, f"extra layer {i + 1}")
                            for i, arn in enumerate(extra_arns)]
    door = front_door_of(outputs)
    api_id = outputs.get("ApiId") or "local"
    if door == "url":  # the URL's id: its host's first label (none before the first release)
        url = function_url(clients.lambda_, function_name)
        host = urllib.parse.urlsplit(url).hostname if url else None
        api_id = host.split(".")[0] if host else api_id
    arn = unqualified_arn(str(config.get("FunctionArn", "")))
    invoked = arn if qualifier is None or qualifier == LATEST else f"{arn}:{qualifier}"
    return DeployedFunction(
        stack_name=stack_name, function_name=function_name,
        function_arn=str(config.get("FunctionArn", "")), handler=config["Handler"],
        runtime=config.get("Runtime", ""), timeout=float(config.get("Timeout") or 3),
        memory_size=int(config.get("MemorySize") or 128), environment=env, code=code,
        layers=layers, api_id=api_id, front_door=door,
        stage_name=outputs.get("StageName") or params.get("StageName") or "prod",
        region=clients.region_name, version=version, invoked_arn=invoked,
    )
