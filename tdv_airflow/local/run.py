"""Run a deployed prediction function on this machine, exactly as deployed.

The local AWS emulator never executes Lambda, and on AWS it is handy to try a deployed
function without calling the endpoint. Given a stack, this module:

1. finds its function (stack output ``FunctionName``, else its
   ``AWS::Lambda::Function`` resource) and reads the function's configuration;
2. downloads the function's code (``get_function`` ``Code.Location`` when it is a
   presigned URL, as on AWS; else the stack's ``CodeKey`` in ``ArtifactBucket``) and
   its layers (the configuration's ``Layers`` through ``get_layer_version_by_arn``, as
   on AWS; when the configuration lists none, as on the emulator, which ignores layers:
   the stack's ``LayerKey``, ``DepsLayerKey`` and ``ExtraLayerArns`` parameters);
3. checks every download against the digests it knows (the configuration's
   ``CodeSha256``, the layer versions' ``CodeSha256``, and the ``TDV_CODE_SHA256``,
   ``TDV_LAYER_SHA256`` and ``TDV_DEPS_LAYER_SHA256`` environment variables);
4. lays them out as the Lambda runtime does: the code in a task folder (the working
   directory and ``sys.path[0]``), every layer extracted in order into one ``/opt``-like
   folder (``opt/python`` and ``opt/python/lib/python3.X/site-packages`` on
   ``sys.path``), and boto3 from this environment standing in for the runtime's own.
   Layouts are cached by digest under ``workdir``, so later runs download nothing;
5. runs the handler in a fresh Python process (``python -I -S``: neither the project
   nor this environment's site-packages are importable) with the function's
   environment variables, the caller's credentials and region, and
   ``AWS_ENDPOINT_URL`` when the clients point at an emulator;
6. feeds it API Gateway REST (payload v1) proxy events, and turns its answers (or its
   failures) into what API Gateway would return.

From the shell::

    tdv-local-run invoke --stack iris --payload '{"features": [[5.1, 3.5, 1.4, 0.2]]}'
    tdv-local-run serve --stack iris --port 8080      # then: curl -d '{...}' \\
                                                      #   http://127.0.0.1:8080/predict

The function runs with the caller's credentials, not the function's role: a missing
IAM permission of the role does not show locally.
"""

from __future__ import annotations

import argparse
import ast
import base64
import hashlib
import importlib.util
import io
import json
import logging
import os
import queue
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
import zipfile
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.exceptions import LocalRunError, StackNotFoundError, TdvError

log = logging.getLogger(__name__)
function_log = logging.getLogger("tdv_airflow.local.run.function")

#: Modules the Lambda Python runtime provides besides the standard library.
RUNTIME_MODULES = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3")
#: API Gateway's answer when the function fails, times out or answers malformed data.
INTERNAL_ERROR = {"message": "Internal server error"}
_RUNNER_SOURCE = Path(__file__).with_name("lambda_runner.py")
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")
_PASS_THROUGH_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
                     "no_proxy", "AWS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")



def default_workdir() -> Path:
    """Where layouts are cached: ``$TDV_LOCAL_RUN_DIR``, else ``~/.cache/tdv-airflow/local-run``."""
    env = os.environ.get("TDV_LOCAL_RUN_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tdv-airflow" / "local-run"


# ------------------------------------------------------------------ what is deployed

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
    try:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
    except cfn.exceptions.ClientError as exc:
        if "does not exist" in str(exc):
            raise StackNotFoundError(stack_name) from exc
        raise
    outputs = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
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


# ------------------------------------------------------------------------- layout

@dataclass(frozen=True)
class Layout:
    """The laid-out function.

    :param task_dir: the function code (Lambda's ``/var/task``).
    :param opt_dir: every layer extracted in order (Lambda's ``/opt``).
    :param runtime_dir: boto3 and friends (the runtime's own libraries).
    :param runner: the runner script.
    :param downloaded: the names of what had to be downloaded (empty when cached).
    """

    task_dir: Path
    opt_dir: Path
    runtime_dir: Path
    runner: Path
    downloaded: tuple[str, ...] = ()


def _fetch(clients: AwsClients, source: Source) -> bytes:
    try:
        if source.url and not source.url.startswith("https://"):
            raise LocalRunError(f"{source.name} cannot be downloaded: its location is "
                                f"{source.url!r} (the emulator serves no layer content)")
        if source.url:
            with urllib.request.urlopen(source.url, timeout=120) as resp:  # noqa: S310 - https only
                data: bytes = resp.read()
        elif source.bucket and source.key:
            body = clients.s3.get_object(Bucket=source.bucket, Key=source.key)["Body"]
            data = body.read()
        else:
            raise LocalRunError(f"{source.name} has no location")
    except Exception as exc:
        if source.fallback is not None:
            log.info("%s: %s; using %s", source.name, exc, _where(source.fallback))
            return _fetch(clients, source.fallback)
        if isinstance(exc, LocalRunError):
            raise
        raise LocalRunError(f"cannot download {source.name} from {_where(source)}: "
                            f"{exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if source.sha256 and actual != source.sha256:
        raise LocalRunError(f"{source.name} from {_where(source)} has SHA-256 {actual}, "
                            f"expected {source.sha256}: refusing to run it")
    if not source.sha256:
        log.warning("%s from %s: no digest to check it against", source.name, _where(source))
    return data


def _where(source: Source) -> str:
    if source.url:
        return source.url.split("?", 1)[0]
    return f"s3://{source.bucket}/{source.key}"


def extract_zip(data: bytes, dest: Path) -> None:
    """Extract a Lambda zip into ``dest`` as Lambda does: later files overwrite earlier
    ones, executable bits and symbolic links are kept, nothing lands outside ``dest``.

    :param data: the zip's bytes.
    :param dest: the target folder.
    :raises LocalRunError: on an entry that would land outside ``dest``.
    """
    root = dest.resolve()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for info in zf.infolist():
            target = (root / info.filename).resolve()
            if target != root and root not in target.parents:
                raise LocalRunError(f"zip entry {info.filename!r} would land outside {dest}")
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.is_file():
                target.unlink()
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                os.symlink(zf.read(info).decode(), target)
                continue
            with zf.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1024 * 1024)
            if mode & 0o111:
                target.chmod(0o755)


def _publish(tmp: Path, final: Path) -> None:
    try:
        tmp.rename(final)
    except OSError:  # another process laid it out first
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.is_dir():
            raise


def _runtime_dir(workdir: Path) -> Path:
    """A folder holding links to this environment's boto3 and its dependencies."""
    found: dict[str, Path] = {}
    for name in RUNTIME_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            continue
        origin = Path(spec.origin)
        found[name] = origin.parent if spec.submodule_search_locations else origin
    tag = hashlib.sha256(json.dumps(sorted((k, str(v)) for k, v in found.items()))
                         .encode()).hexdigest()[:16]
    final = workdir / "runtime" / tag
    if not final.is_dir():
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=".tmp-"))
        for path in found.values():
            os.symlink(path, tmp / path.name)
        _publish(tmp, final)
    return final


def lay_out(clients: AwsClients, function: DeployedFunction,
            workdir: str | Path | None = None) -> Layout:
    """Download (unless cached), verify and lay out a function's code and layers.

    :param clients: boto3 clients.
    :param function: what :func:`find_function` found.
    :param workdir: the cache folder (default :func:`default_workdir`).
    """
    work = Path(workdir) if workdir else default_workdir()
    work.mkdir(parents=True, exist_ok=True)
    downloaded: list[str] = []

    def fetch(source: Source) -> tuple[bytes, str]:
        data = _fetch(clients, source)
        downloaded.append(source.name)
        return data, hashlib.sha256(data).hexdigest()

    # The code: cached by its digest.
    code_data: bytes | None = None
    code_sha = function.code.sha256
    if not code_sha:
        code_data, code_sha = fetch(function.code)
    task_dir = work / "code" / code_sha
    if not task_dir.is_dir():
        if code_data is None:
            code_data, _ = fetch(function.code)
        task_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=task_dir.parent, prefix=".tmp-"))
        extract_zip(code_data, tmp)
        _publish(tmp, task_dir)

    # The layers: one folder per ordered list of layer digests.
    layer_data: dict[int, bytes] = {}
    digests = []
    for i, source in enumerate(function.layers):
        if source.sha256:
            digests.append(source.sha256)
        else:
            layer_data[i], sha = fetch(source)
            digests.append(sha)
    opt_key = hashlib.sha256("\n".join(["opt", *digests]).encode()).hexdigest()
    opt_dir = work / "opt" / opt_key
    if not opt_dir.is_dir():
        opt_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=opt_dir.parent, prefix=".tmp-"))
        try:
            for i, source in enumerate(function.layers):
                data = layer_data.pop(i, None)
                if data is None:
                    data, _ = fetch(source)
                extract_zip(data, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        (tmp / ".tdv-layers.json").write_text(json.dumps(
            [{"name": s.name, "sha256": d} for s, d in zip(function.layers, digests,
                                                             strict=True)], indent=1))
        _publish(tmp, opt_dir)

    runner_bytes = _RUNNER_SOURCE.read_bytes()
    runner = work / f"runner-{hashlib.sha256(runner_bytes).hexdigest()[:16]}.py"
    if not runner.is_file():
        fd, tmp_runner = tempfile.mkstemp(dir=work, suffix=".py")
        with os.fdopen(fd, "wb") as out:
            out.write(runner_bytes)
        os.replace(tmp_runner, runner)
    return Layout(task_dir, opt_dir, _runtime_dir(work), runner, tuple(downloaded))


# ---------------------------------------------------------------- the environment

def _credentials(clients: AwsClients) -> Any:
    signer = getattr(clients.s3, "_request_signer", None)
    creds = getattr(signer, "_credentials", None)
    if creds is None:
        import boto3

        creds = boto3.Session().get_credentials()
    return creds.get_frozen_credentials() if creds is not None else None


def emulator_endpoint(clients: AwsClients) -> str | None:
    """The clients' endpoint when it is not AWS (e.g. the local emulator), else ``None``.

    :param clients: boto3 clients.
    """
    endpoint = str(clients.s3.meta.endpoint_url or "")
    host = urllib.parse.urlsplit(endpoint).hostname or ""
    if not host or host.endswith(_AWS_HOST_SUFFIXES):
        return None
    return endpoint


def function_environ(clients: AwsClients, function: DeployedFunction,
                     layout: Layout) -> dict[str, str]:
    """The child's environment: the function's variables, the runtime's reserved ones,
    the caller's credentials and, for an emulator, ``AWS_ENDPOINT_URL``.

    :param clients: boto3 clients (their credentials and endpoint are passed on).
    :param function: the deployed function.
    :param layout: the laid-out function.
    """
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    task, opt = str(layout.task_dir), str(layout.opt_dir)
    env = dict(function.environment)
    env.update({
        "AWS_REGION": function.region,
        "AWS_DEFAULT_REGION": function.region,
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.function_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EC2_METADATA_DISABLED": "true",
        "LAMBDA_TASK_ROOT": task,
        "LAMBDA_RUNTIME_DIR": str(layout.runtime_dir),
        "_HANDLER": function.handler,
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "PATH": os.pathsep.join([f"{opt}/bin", os.environ.get("PATH", "/usr/bin:/bin")]),
        "LD_LIBRARY_PATH": os.pathsep.join([f"{task}/lib", f"{opt}/lib"]),
        "PYTHONPATH": os.pathsep.join([task, f"{opt}/python/lib/{version}/site-packages",
                                       f"{opt}/python", str(layout.runtime_dir)]),
    })
    for name in _PASS_THROUGH_ENV:
        if name in os.environ:
            env[name] = os.environ[name]
    creds = _credentials(clients)
    if creds is not None:
        env["AWS_ACCESS_KEY_ID"] = creds.access_key
        env["AWS_SECRET_ACCESS_KEY"] = creds.secret_key
        if creds.token:
            env["AWS_SESSION_TOKEN"] = creds.token
    endpoint = emulator_endpoint(clients)
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


# ------------------------------------------------------------------------- events

def api_gateway_event(
    body: str | bytes | None,
    *,
    method: str = "POST",
    path: str = "/predict",
    resource: str = "/predict",
    headers: Mapping[str, str | Sequence[str]] | None = None,
    query: Mapping[str, str | Sequence[str]] | None = None,
    stage: str = "prod",
    api_id: str = "local",
    region: str = "us-east-1",
    account_id: str = "123456789012",
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST API proxy event (payload format 1.0).

    :param body: the request body; bytes that are not UTF-8 travel base64-encoded.
    :param method: the HTTP method.
    :param path: the request path without the stage (e.g. ``/predict``).
    :param resource: the matched API resource.
    :param headers: request headers (a list value gives repeated headers).
    :param query: query string parameters (a list value gives repeated parameters).
    :param stage: the API stage.
    :param api_id: the REST API id.
    :param region: the region.
    :param account_id: the account id.
    :param source_ip: the caller's address.
    """
    multi_headers = {k: [v] if isinstance(v, str) else list(v)
                     for k, v in (headers or {}).items()}
    multi_query = {k: [v] if isinstance(v, str) else list(v) for k, v in (query or {}).items()}
    is_base64 = False
    text: str | None
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode(), True
    else:
        text = body
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    user_agent = next((v[-1] for k, v in multi_headers.items() if k.lower() == "user-agent"),
                      None)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": base64.b32encode(uuid.uuid4().bytes).decode()[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": account_id,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": api_id,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {"sourceIp": source_ip, "userAgent": user_agent, "caller": None,
                         "user": None, "accountId": None, "accessKey": None,
                         "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                         "cognitoAuthenticationType": None,
                         "cognitoAuthenticationProvider": None, "userArn": None,
                         "principalOrgId": None},
            "domainName": f"{api_id}.execute-api.{region}.amazonaws.com",
            "apiId": api_id,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def payload_body(payload: Any) -> str | bytes:
    """The request body for a payload: ``str`` and ``bytes`` verbatim (so malformed JSON
    can be sent too), anything else JSON-encoded.

    :param payload: the payload.
    """
    if isinstance(payload, str | bytes):
        return payload
    return json.dumps(payload)


def _gateway_error(status: int = 502, payload: Mapping[str, Any] = INTERNAL_ERROR
                   ) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(dict(payload)), "isBase64Encoded": False}


def check_proxy_response(response: Any) -> dict[str, Any]:
    """What API Gateway makes of a function's answer: the answer itself when it is a
    valid proxy response, else 502 ``Internal server error``.

    :param response: the function's return value.
    """
    ok = (isinstance(response, dict)
          and isinstance(response.get("statusCode"), int)
          and not isinstance(response.get("statusCode"), bool)
          and isinstance(response.get("headers") or {}, dict)
          and isinstance(response.get("body", ""), str | None)
          and set(response) <= {"statusCode", "headers", "multiValueHeaders", "body",
                                "isBase64Encoded", "cookies"})
    if not ok:
        log.error("malformed Lambda proxy response: %.300r", response)
        return _gateway_error()
    return response  # type: ignore[no-any-return]


# ------------------------------------------------------------------- the process

@dataclass
class Invocation:
    """One invocation's outcome.

    :param response: what API Gateway would answer (a proxy response dict).
    :param duration_ms: the handler's run time in milliseconds.
    :param cold: whether this was the process's first invocation (a cold start).
    :param init_ms: the module import time of a cold start.
    :param error: the function's error (``errorType``, ``errorMessage``, ``stackTrace``),
        if it raised, timed out or crashed.
    :param diagnostics: where the handler and the watched modules were imported from,
        the child's ``sys.path``, working directory and pid.
    """

    response: dict[str, Any]
    duration_ms: float
    cold: bool = False
    init_ms: float | None = None
    error: dict[str, Any] | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


class LocalFunction:
    """A deployed function running in a long-lived local process (a warm container).

    ::

        with LocalFunction(clients, "iris") as fn:
            fn.invoke({"features": [[5.1, 3.5, 1.4, 0.2]]})     # cold
            fn.invoke({"features": [[6.2, 2.9, 4.3, 1.3]]})     # warm

    :param clients: boto3 clients of the stack's account and region.
    :param stack_name: the stack.
    :param workdir: the layout cache (default :func:`default_workdir`).
    :param python: the interpreter to run (default: this one, whose minor version must
        match the function's runtime).
    :param invoke_timeout: seconds an invocation may take (default: the function's
        timeout).
    :param init_timeout: seconds the handler's module may take to import.
    """

    def __init__(self, clients: AwsClients, stack_name: str, *,
                 workdir: str | Path | None = None, python: str | None = None,
                 invoke_timeout: float | None = None, init_timeout: float = 60.0) -> None:
        self.clients = clients
        self.stack_name = stack_name
        self.workdir = Path(workdir) if workdir else default_workdir()
        self.python = python
        self.invoke_timeout = invoke_timeout
        self.init_timeout = init_timeout
        self.function: DeployedFunction | None = None
        self.layout: Layout | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._out: queue.Queue[str | None] = queue.Queue()
        self._stderr_tail: deque[str] = deque(maxlen=200)
        self._lock = threading.Lock()
        self._init_ms: float | None = None
        self._served = 0
        self._init_error: dict[str, Any] | None = None
        self._diagnostics: dict[str, Any] = {}

    # -- lifecycle
    def prepare(self) -> Layout:
        """Find the function and lay it out (no process is started)."""
        if self.function is None:
            self.function = find_function(self.clients, self.stack_name)
        if self.layout is None:
            self._check_runtime(self.function)
            self.layout = lay_out(self.clients, self.function, self.workdir)
        return self.layout

    def _check_runtime(self, function: DeployedFunction) -> None:
        if self.python is not None:
            return
        mine = f"python{sys.version_info.major}.{sys.version_info.minor}"
        if function.runtime and function.runtime != mine:
            raise LocalRunError(f"function {function.function_name!r} runs {function.runtime}"
                                f" but this interpreter is {mine}: run tdv-local-run with "
                                f"{function.runtime} (or pass python=...)")

    def start(self) -> LocalFunction:
        """Lay out the function and start its process (a cold start).

        :raises LocalRunError: when the process does not start.
        """
        layout = self.prepare()
        assert self.function is not None
        if self._proc is not None and self._proc.poll() is None:
            return self
        self._out = queue.Queue()
        self._served = 0
        env = function_environ(self.clients, self.function, layout)
        argv = [self.python or sys.executable, "-I", "-S", str(layout.runner),
                str(layout.task_dir), str(layout.opt_dir), str(layout.runtime_dir),
                self.function.handler]
        started = time.perf_counter()
        self._proc = subprocess.Popen(  # noqa: S603 - our interpreter and runner, no shell
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=layout.task_dir, text=True, encoding="utf-8", bufsize=1)
        assert self._proc.stdout is not None and self._proc.stderr is not None
        threading.Thread(target=self._pump_out, args=(self._proc.stdout, self._out),
                         daemon=True).start()
        threading.Thread(target=self._pump_err, args=(self._proc.stderr,),
                         daemon=True).start()
        ready = self._receive(self.init_timeout)
        if ready is None:
            self._kill()
            raise LocalRunError(f"the function process did not start within "
                                f"{self.init_timeout} s{self._tail()}")
        self._init_ms = float(ready.get("init_ms") or (time.perf_counter() - started) * 1000)
        if ready.get("type") == "init_error":
            self._init_error = ready.get("error")
            self._kill()
        else:
            self._init_error = None
            self._diagnostics = ready.get("diagnostics") or {}
        return self

    def close(self) -> None:
        """Stop the process (it exits when its stdin closes)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def __enter__(self) -> LocalFunction:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        """The process id of the running function, if any."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    # -- plumbing
    @staticmethod
    def _pump_out(stream: IO[str], out: queue.Queue[str | None]) -> None:
        for line in stream:
            out.put(line)
        out.put(None)

    def _pump_err(self, stream: IO[str]) -> None:
        for line in stream:
            text = line.rstrip("\n")
            self._stderr_tail.append(text)
            function_log.info("%s", text)

    def _tail(self) -> str:
        lines = list(self._stderr_tail)[-20:]
        return (":\n" + "\n".join(lines)) if lines else ""

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                line = self._out.get(timeout=remaining)
            except queue.Empty:
                return None
            if line is None:  # the process ended
                return {"type": "crash"}
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                function_log.info("%s", line.rstrip("\n"))
                continue
            if isinstance(message, dict):
                return message

    # -- invocations
    def invoke_event(self, event: Mapping[str, Any]) -> Invocation:
        """Run the handler on one event; the process is (re)started when needed.

        :param event: the Lambda event.
        :returns: the invocation's outcome; a failing function gives API Gateway's 502.
        """
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self.start()
            assert self.function is not None
            cold = self._served == 0
            self._served += 1
            if self._init_error is not None:
                log.error("the function failed to initialise: %s: %s",
                          self._init_error.get("errorType"),
                          self._init_error.get("errorMessage"))
                error = self._init_error
                self._proc = None
                return Invocation(_gateway_error(), 0.0, True, self._init_ms, error)
            timeout = self.invoke_timeout or self.function.timeout
            request_id = str(uuid.uuid4())
            message = {"type": "invoke", "event": event, "request_id": request_id,
                       "function_arn": self.function.function_arn,
                       "deadline_ms": time.time() * 1000 + timeout * 1000}
            assert self._proc is not None and self._proc.stdin is not None
            started = time.perf_counter()
            try:
                self._proc.stdin.write(json.dumps(message) + "\n")
                self._proc.stdin.flush()
            except OSError:
                pass  # the process died: reported below
            result = self._receive(timeout)
            elapsed = (time.perf_counter() - started) * 1000
            init_ms = self._init_ms if cold else None
            if result is None:
                self._kill()
                error = {"errorType": "Sandbox.Timedout", "errorMessage":
                         f"Task timed out after {timeout:.2f} seconds"}
                log.error("%s: %s", self.function.function_name, error["errorMessage"])
                return Invocation(_gateway_error(), elapsed, cold, init_ms, error)
            if result.get("type") == "crash":
                self._kill()
                error = {"errorType": "Runtime.ExitError",
                         "errorMessage": f"the function process exited{self._tail()}"}
                log.error("%s: %s", self.function.function_name, error["errorMessage"])
                return Invocation(_gateway_error(), elapsed, cold, init_ms, error)
            diagnostics = result.get("diagnostics") or self._diagnostics
            duration = float(result.get("duration_ms") or elapsed)
            if result.get("error"):
                err = result["error"]
                log.error("%s raised %s: %s\n%s", self.function.function_name,
                          err.get("errorType"), err.get("errorMessage"),
                          "".join(err.get("stackTrace") or []))
                return Invocation(_gateway_error(), duration, cold, init_ms, err, diagnostics)
            response = check_proxy_response(result.get("response"))
            return Invocation(response, duration, cold, init_ms, None, diagnostics)

    def event_for(self, payload: Any, *, method: str = "POST",
                  headers: Mapping[str, str] | None = None, path: str = "/predict",
                  query: Mapping[str, str | Sequence[str]] | None = None) -> dict[str, Any]:
        """The API Gateway event of a request to this function's API.

        :param payload: the request payload (see :func:`payload_body`).
        :param method: the HTTP method.
        :param headers: request headers (``Content-Type: application/json`` by default).
        :param path: the request path without the stage.
        :param query: query string parameters.
        """
        self.prepare()
        assert self.function is not None
        fn = self.function
        host = f"{fn.api_id}.execute-api.{fn.region}.amazonaws.com"
        all_headers = {"Accept": "*/*", "Content-Type": "application/json", "Host": host,
                       "User-Agent": "tdv-local-run", "X-Forwarded-For": "127.0.0.1",
                       "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https",
                       **(headers or {})}
        account = fn.function_arn.split(":")[4] if fn.function_arn.count(":") >= 4 else None
        return api_gateway_event(
            payload_body(payload) if payload is not None else None, method=method,
            path=path, headers=all_headers, query=query, stage=fn.stage_name,
            api_id=fn.api_id, region=fn.region, account_id=account or "123456789012")

    def invoke(self, payload: Any, *, method: str = "POST",
               headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Send one request through the function, as API Gateway would.

        :param payload: the request payload (see :func:`payload_body`).
        :param method: the HTTP method.
        :param headers: request headers.
        :returns: the proxy response (``statusCode``, ``headers``, ``body``).
        """
        return self.invoke_event(self.event_for(payload, method=method,
                                                headers=headers)).response


def invoke_deployed(clients: AwsClients, stack_name: str, payload: Any, *,
                    method: str = "POST", headers: dict[str, str] | None = None,
                    workdir: Path | None = None) -> dict[str, Any]:
    """Run a deployed stack's function once, locally, on one API Gateway request.

    The code and layers are fetched from where they are deployed (cached by digest in
    ``workdir``) and run in a fresh Python process; see the module documentation.

    :param clients: boto3 clients of the stack's account and region (an emulator's too).
    :param stack_name: the stack.
    :param payload: the request payload: ``str``/``bytes`` are sent verbatim, anything
        else as JSON.
    :param method: the HTTP method.
    :param headers: request headers.
    :param workdir: the layout cache (default :func:`default_workdir`).
    :returns: the proxy response dict (``statusCode``, ``headers``, ``body``), or API
        Gateway's 502 when the function fails.
    """
    with LocalFunction(clients, stack_name, workdir=workdir) as function:
        return function.invoke(payload, method=method, headers=headers)


# --------------------------------------------------------------------------- CLI

def clients_for(region: str | None = None, endpoint_url: str | None = None,
                profile: str | None = None) -> AwsClients:
    """Clients from boto3's default chain (``AWS_ENDPOINT_URL`` is honoured).

    :param region: the region (default: the profile's or ``AWS_DEFAULT_REGION``).
    :param endpoint_url: an endpoint for every service, e.g. an emulator's.
    :param profile: a named profile.
    """
    import boto3

    session = boto3.Session(profile_name=profile, region_name=region)
    region_name = session.region_name
    if not region_name:
        raise LocalRunError("no region: pass --region or set AWS_DEFAULT_REGION")

    def factory(service: str) -> Any:
        return session.client(service, region_name=region_name, endpoint_url=endpoint_url)

    return AwsClients(factory, region_name)


def _cli(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tdv-local-run",
        description="Run a deployed tdv-airflow function locally, from its deployed "
                    "code and layers.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--stack", required=True, help="the stack's name")
    common.add_argument("--region", default=None, help="AWS region")
    common.add_argument("--endpoint-url", default=None,
                        help="endpoint of every service (e.g. the local emulator)")
    common.add_argument("--profile", default=None, help="AWS profile")
    common.add_argument("--workdir", type=Path, default=None,
                        help=f"layout cache (default {default_workdir()})")
    common.add_argument("-v", "--verbose", action="store_true",
                        help="show the function's log")
    inv = sub.add_parser("invoke", parents=[common], help="send one request, print the answer")
    body = inv.add_mutually_exclusive_group(required=True)
    body.add_argument("--payload", help="the request body (JSON text)")
    body.add_argument("--payload-file", type=Path, help="a file holding the body ('-': stdin)")
    inv.add_argument("--method", default="POST")
    inv.add_argument("--header", action="append", default=[], metavar="NAME:VALUE")
    srv = sub.add_parser("serve", parents=[common],
                         help="answer HTTP requests on 127.0.0.1 through the function")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(message)s" if args.verbose else "%(levelname)s %(message)s")
    try:
        clients = clients_for(args.region, args.endpoint_url, args.profile)
        if args.command == "invoke":
            if args.payload_file is not None:
                text = (sys.stdin.read() if str(args.payload_file) == "-"
                        else args.payload_file.read_text(encoding="utf-8"))
            else:
                text = args.payload
            headers = dict(h.split(":", 1) for h in args.header)
            headers = {k.strip(): v.strip() for k, v in headers.items()}
            response = invoke_deployed(clients, args.stack, text, method=args.method,
                                       headers=headers or None, workdir=args.workdir)
            print(json.dumps(response, indent=2))
            return 0 if int(response.get("statusCode", 500)) < 400 else 1
        from tdv_airflow.local.server import serve

        serve(LocalFunction(clients, args.stack, workdir=args.workdir), args.host, args.port)
        return 0
    except TdvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main() -> None:
    """Console entry point of ``tdv-local-run``."""
    raise SystemExit(_cli())


if __name__ == "__main__":
    main()
