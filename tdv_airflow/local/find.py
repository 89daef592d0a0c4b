"""Finding a deployed function from its stack, and where its code and layers come from.

Given a stack, :func:`find_function` finds its function (the stack output
``FunctionName``, else its single ``AWS::Lambda::Function`` resource), reads the
function's configuration and says where each zip is fetched from, with the digest it
must have:

- the code: ``get_function`` ``Code.Location`` when it is a presigned URL, as on AWS;
  else the stack's ``CodeKey`` in ``ArtifactBucket`` (the emulator's location is not one);
- the layers: the configuration's ``Layers`` through ``get_layer_version_by_arn``, as on
  AWS; when the configuration lists none, as on the emulator (which ignores layers), the
  stack's ``LayerKey``, ``DepsLayerKey`` and ``ExtraLayerArns`` parameters;
- the digests: the configuration's ``CodeSha256``, the layer versions' ``CodeSha256``,
  and the ``TDV_CODE_SHA256``, ``TDV_LAYER_SHA256`` and ``TDV_DEPS_LAYER_SHA256``
  environment variables the stack set.
"""

from __future__ import annotations

import ast
import base64
import urllib.parse
from dataclasses import dataclass

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.stacks import describe, outputs_of
from tdv_airflow.exceptions import LocalRunError, StackNotFoundError


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
    :param api_id: the REST API's id (for events), if known.
    :param stage_name: the API stage (for events).
    :param region: the region.
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

    @property
    def account_id(self) -> str:
        """The account in the function's ARN (API Gateway's example account without one)."""
        parts = self.function_arn.split(":")
        return parts[4] if len(parts) > 4 and parts[4] else "123456789012"


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


def find_function(clients: AwsClients, stack_name: str) -> DeployedFunction:
    """Find a stack's function and where its code and layers come from.

    :param clients: boto3 clients of the stack's account and region.
    :param stack_name: the stack's name or id.
    :raises StackNotFoundError: when the stack does not exist.
    :raises LocalRunError: when it has no (single) function.
    """
    cfn = clients.cloudformation
    stack = describe(cfn, stack_name)
    if stack is None:
        raise StackNotFoundError(stack_name)
    outputs = outputs_of(stack)
    params = {p["ParameterKey"]: p.get("ParameterValue", "")
              for p in stack.get("Parameters") or []}
    function_name = outputs.get("FunctionName")
    if not function_name:
        resources = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
        functions = [r for r in resources if r.get("ResourceType") == "AWS::Lambda::Function"
                     and r.get("PhysicalResourceId")]
        preferred = [r for r in functions if r.get("LogicalResourceId") == "PredictFunction"]
        chosen = preferred or functions
        if len(chosen) != 1:
            raise LocalRunError(f"stack {stack_name!r} has {len(functions)} Lambda functions "
                                "and no FunctionName output: cannot tell which to run")
        function_name = chosen[0]["PhysicalResourceId"]
    got = clients.lambda_.get_function(FunctionName=function_name)
    config = got["Configuration"]
    env = dict((config.get("Environment") or {}).get("Variables") or {})
    bucket = params.get("ArtifactBucket") or env.get("TDV_BUCKET")

    def from_param(name: str, key_param: str, sha: str | None) -> Source | None:
        key = params.get(key_param)
        return Source(name, sha or None, bucket=bucket, key=key) if bucket and key else None

    code_sha = _b64_to_hex(config.get("CodeSha256"))
    code_fallback = from_param("function code", "CodeKey",
                               code_sha or env.get("TDV_CODE_SHA256"))
    location = (got.get("Code") or {}).get("Location")
    if _is_presigned(location):
        code = Source("function code", code_sha, url=location, fallback=code_fallback)
    elif code_fallback is not None:
        code = code_fallback
    else:
        raise LocalRunError(f"cannot fetch the code of {function_name!r}: its location "
                            f"{location!r} is not a presigned URL and stack {stack_name!r} "
                            "has no ArtifactBucket/CodeKey parameters")
    if code_sha and env.get("TDV_CODE_SHA256") and code_sha != env["TDV_CODE_SHA256"]:
        raise LocalRunError(f"function {function_name!r} runs code {code_sha}, but its stack "
                            f"deployed {env['TDV_CODE_SHA256']}: it was changed outside "
                            "CloudFormation")

    by_params: list[Source] = []
    dill = from_param("dill layer", "LayerKey",
                      env.get("TDV_LAYER_SHA256") or params.get("LayerSha256"))
    deps = from_param("dependency layer", "DepsLayerKey",
                      env.get("TDV_DEPS_LAYER_SHA256") or params.get("DepsLayerSha256"))
    by_params += [s for s in (dill, deps) if s is not None]
    extra_arns = _parse_arn_list(params.get("ExtraLayerArns"))

    configured = [layer["Arn"] for layer in config.get("Layers") or []]
    if configured:  # AWS: the layers exactly as attached, by ARN
        # The stack's layers, in the template's order, back up the first ones.
        backups: list[Source | None] = [*by_params, *([None] * len(configured))]
        layers = [_layer_by_arn(clients, arn, f"layer {i + 1}", backups[i])
                  for i, arn in enumerate(configured)]
    else:  # the emulator keeps no layers on the function: use the stack's parameters
        layers = by_params + [_layer_by_arn(clients, arn, f"extra layer {i + 1}")
                              for i, arn in enumerate(extra_arns)]
    return DeployedFunction(
        stack_name=stack_name, function_name=function_name,
        function_arn=config.get("FunctionArn", ""), handler=config["Handler"],
        runtime=config.get("Runtime", ""), timeout=float(config.get("Timeout") or 3),
        memory_size=int(config.get("MemorySize") or 128), environment=env, code=code,
        layers=layers, api_id=outputs.get("ApiId") or "local",
        stage_name=outputs.get("StageName") or params.get("StageName") or "prod",
        region=clients.region_name,
    )
