"""tdv-airflow request processor: the Lambda function behind ``POST /predict``.

This single file is the whole function code (handler ``lbd_request_processor.handler``).
It runs with the standard library, the runtime's boto3 and the Lambda layers (``dill``,
optionally the user's NumPy / scikit-learn / joblib layers). It never imports
``tdv_airflow``.

Environment contract (set by the CloudFormation stack):

``TDV_BUCKET``
    S3 bucket holding the artifacts.
``TDV_MODEL_KEY`` / ``TDV_MODEL_SHA256``
    Key of the pickled model and its lowercase hex SHA-256. The model is loaded with
    ``joblib.load`` when the key ends in ``.joblib`` and with ``dill.loads`` (which also
    reads plain pickles) otherwise. It must have a ``predict`` method.
``TDV_PREPRO_KEY`` / ``TDV_PREPRO_SHA256``
    Key of the dill pickle of the preprocessing function (pickled by value) and its
    SHA-256.
``TDV_PYTHON_VERSION``
    ``major.minor`` of the Python that pickled the function (e.g. ``"3.11"``).
``TDV_DILL_VERSION``
    Version of dill that pickled the function. When the running interpreter's
    ``major.minor`` or the importable dill differ, nothing is unpickled: the function
    logs a line naming both versions and answers 500.
``TDV_DEPS_BUNDLE_KEY`` / ``TDV_DEPS_BUNDLE_SHA256`` (optional)
    A dependency bundle fetched, verified and put on ``sys.path`` before anything is
    unpickled (``tdv_bundle.py``, zipped beside this file); a failure answers 500.
``TDV_MAX_BODY_BYTES`` (optional)
    Largest accepted request body in bytes (after base64 decoding); default 6291456,
    Lambda's 6 MB synchronous payload limit.

boto3 reaches S3 through the default credential chain; ``AWS_ENDPOINT_URL`` /
``AWS_ENDPOINT_URL_S3`` (native boto3 settings) point it elsewhere, e.g. at an emulator.

Behaviour:

* Accepts API Gateway REST (payload v1) and HTTP API (payload v2) proxy events, with
  plain or base64-encoded bodies.
* Artifacts are downloaded once per execution environment. In Lambda (the runtime sets
  ``AWS_LAMBDA_INITIALIZATION_TYPE``) the load starts while the module is imported, in
  the init phase, so that the first request does not spend API Gateway's 29 s on a large
  model. An on-demand init waits for it at most ``TDV_INIT_WAIT_SECONDS`` (default 8 s):
  Lambda ends an init phase after 10 s and runs it again within the first invocation,
  so a longer load goes on in the background (frozen with the environment between
  invocations) and the first request waits for it instead of starting over;
  provisioned-concurrency and SnapStart inits, which may last minutes, wait for the
  whole load. A load that fails there is logged and retried by the first request.
  Anywhere else importing this module never touches S3 and the first request loads
  them. Each download's SHA-256 is checked against the environment *before* anything is
  unpickled. A failed load is not cached.
* ``prepro_fn(payload)`` runs on the parsed JSON body, then ``model.predict(...)``; the
  answer is ``200 {"predictions": [...]}``.
* Errors: not an API Gateway event / missing or malformed JSON → 400; method other than
  POST → 405 (``Allow: POST``); body over the limit → 413; the preprocessing function
  or the model rejecting the input (``ValueError``, ``TypeError``, ``LookupError``,
  ``ArithmeticError``, ``AttributeError``) → 422 with the exception type and a truncated
  message; anything else → 500 with the request id. No exception escapes the handler.
* Exactly one structured JSON line per request on the ``lbd_request_processor.access``
  logger (status, latency_ms, request_id, method, and ``cold_start`` for the execution
  environment's first request). Loads (``artifacts_loaded`` with the phase, ``init`` or
  ``request``) and load problems are logged on the ``lbd_request_processor`` logger.
  Request bodies are never logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import json
import logging
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3  # noqa: TID253 - the Lambda runtime ships boto3; the client is made lazily
from botocore.config import Config  # noqa: TID253

DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_ERROR_MESSAGE_CHARS = 200
INPUT_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    LookupError,
    ArithmeticError,
    AttributeError,
)

_S3_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5,
                    read_timeout=30)
_SHA256_HEX_LEN = 64

_LOG = logging.getLogger("lbd_request_processor")
_ACCESS_LOG = logging.getLogger("lbd_request_processor.access")
_LOG.setLevel(logging.INFO)


@dataclass(frozen=True)
class _Artifacts:
    """The loaded model and preprocessing function."""

    model: Any
    prepro_fn: Callable[[Any], Any]


@dataclass(frozen=True)
class _Config:
    """The artifact settings read from the environment."""

    bucket: str
    model_key: str
    model_sha256: str
    prepro_key: str
    prepro_sha256: str
    python_version: str
    dill_version: str


class _LoadError(Exception):
    """The artifacts cannot be loaded (configuration, S3, digest, version or unpickling)."""


class _HttpError(Exception):
    """A request that ends with a client error status."""

    def __init__(self, status: int, message: str, *, reason: str,
                 headers: Mapping[str, str] | None = None) -> None:
        """Describe the error answer.

        :param status: the HTTP status code.
        :param message: the ``error`` text returned to the client.
        :param reason: a short machine-readable cause for the access log.
        :param headers: extra response headers.
        """
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason
        self.headers = dict(headers or {})


_ARTIFACTS: _Artifacts | None = None
_S3_CLIENT: Any = None
_SERVED = False
_LOCK = threading.Lock()


def _reset_cache() -> None:
    """Forget the loaded artifacts, the S3 client and the requests served (for tests)."""
    global _ARTIFACTS, _S3_CLIENT, _SERVED
    with _LOCK:
        _ARTIFACTS = None
        _S3_CLIENT = None
        _SERVED = False


def _s3_client() -> Any:
    """The execution environment's S3 client, created on first use."""
    global _S3_CLIENT
    if _S3_CLIENT is None:
        _S3_CLIENT = boto3.client("s3", config=_S3_CONFIG)
    return _S3_CLIENT


#: The log lines' JSON (``json.dumps(record, default=str, sort_keys=True)``), built once.
_LOG_ENCODER = json.JSONEncoder(default=str, sort_keys=True)
#: The responses' JSON (``json.dumps(payload, allow_nan=False)``), built once.
_BODY_ENCODER = json.JSONEncoder(allow_nan=False)


def _log_json(logger: logging.Logger, level: int, record: Mapping[str, Any]) -> None:
    """Emit one JSON log line.

    The record is made directly (``makeRecord`` + ``handle``, what ``Logger.log`` does
    without looking up the caller's frame, a per-request cost): its source is this module.

    :param logger: the logger to use.
    :param level: the logging level.
    :param record: the fields of the line.
    """
    if logger.isEnabledFor(level):
        logger.handle(logger.makeRecord(logger.name, level, __file__, _LOG_LINE,
                                        _LOG_ENCODER.encode(record), (), None, "_log_json"))


_LOG_LINE = _log_json.__code__.co_firstlineno


# --------------------------------------------------------------------------- loading


def _read_config() -> _Config:
    """Read and check the artifact settings from the environment.

    :raises _LoadError: when a variable is missing or a digest is not SHA-256 hex.
    """
    names = {
        "bucket": "TDV_BUCKET",
        "model_key": "TDV_MODEL_KEY",
        "model_sha256": "TDV_MODEL_SHA256",
        "prepro_key": "TDV_PREPRO_KEY",
        "prepro_sha256": "TDV_PREPRO_SHA256",
        "python_version": "TDV_PYTHON_VERSION",
        "dill_version": "TDV_DILL_VERSION",
    }
    values = {field: os.environ.get(var, "").strip() for field, var in names.items()}
    missing = sorted(names[field] for field, value in values.items() if not value)
    if missing:
        raise _LoadError(f"missing environment variables: {', '.join(missing)}")
    for field in ("model_sha256", "prepro_sha256"):
        digest = values[field].lower()
        if len(digest) != _SHA256_HEX_LEN or any(c not in "0123456789abcdef" for c in digest):
            raise _LoadError(f"{names[field]} is not a SHA-256 hex digest: {values[field]!r}")
        values[field] = digest
    return _Config(**values)


def _check_versions(config: _Config) -> Any:
    """Import dill and check that it and Python match the ones that pickled the function.

    :param config: the artifact settings.
    :returns: the dill module.
    :raises _LoadError: on a mismatch or when dill is not importable.
    """
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    pickled = ".".join(config.python_version.split(".")[:2])
    if pickled != running:
        raise _LoadError(
            f"Python version mismatch: the preprocessing function was pickled with Python "
            f"{config.python_version} but this function runs Python {running}; redeploy "
            f"with a matching Lambda runtime")
    try:
        import dill  # noqa: TID253 - provided by the dill layer
    except ImportError as exc:
        raise _LoadError(f"dill is not importable (expected dill {config.dill_version}; "
                         f"is the dill layer attached?): {exc}") from exc
    installed = str(getattr(dill, "__version__", "unknown"))
    if installed != config.dill_version:
        raise _LoadError(
            f"dill version mismatch: the preprocessing function was pickled with dill "
            f"{config.dill_version} but the layer provides dill {installed}")
    return dill


def _fetch_verified(client: Any, bucket: str, key: str, expected_sha256: str) -> bytes:
    """Download an object and check its SHA-256 before anyone unpickles it.

    :param client: the S3 client.
    :param bucket: the bucket.
    :param key: the object key.
    :param expected_sha256: the lowercase hex digest it must have.
    :raises _LoadError: when the download fails or the digest differs.
    """
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            data = bytes(body.read())
        finally:
            body.close()
    except Exception as exc:  # botocore raises ClientError, connection errors, ...
        raise _LoadError(f"cannot download s3://{bucket}/{key}: "
                         f"{type(exc).__name__}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if not hmac.compare_digest(actual, expected_sha256):
        raise _LoadError(f"SHA-256 mismatch for s3://{bucket}/{key}: expected "
                         f"{expected_sha256}, got {actual}; refusing to unpickle it")
    return data


def _attach_bundle(client: Any, bucket: str) -> None:
    """Put the dependency bundle on ``sys.path`` when the stack attached one.

    :raises _LoadError: when it cannot be fetched, verified or extracted.
    """
    if not os.environ.get("TDV_DEPS_BUNDLE_KEY", "").strip():
        return
    try:
        import tdv_bundle  # noqa: TID253 - zipped beside this file

        tdv_bundle.ensure_bundle(client, bucket)
    except Exception as exc:  # BundleError, or tdv_bundle.py missing from a custom zip
        raise _LoadError(f"dependency bundle: {type(exc).__name__}: {exc}") from exc


def _load_from_s3() -> _Artifacts:
    """Download, verify and unpickle the model and the preprocessing function.

    :raises _LoadError: when any step fails.
    """
    config = _read_config()
    dill = _check_versions(config)
    client = _s3_client()
    _attach_bundle(client, config.bucket)
    model_bytes = _fetch_verified(client, config.bucket, config.model_key, config.model_sha256)
    prepro_bytes = _fetch_verified(client, config.bucket, config.prepro_key,
                                   config.prepro_sha256)
    # Both digests match: only now is anything unpickled.
    try:
        if config.model_key.lower().endswith(".joblib"):
            import joblib  # noqa: TID253 - from the user's layer

            model = joblib.load(io.BytesIO(model_bytes))
        else:
            model = dill.loads(model_bytes)  # noqa: S301 - digest verified above
    except Exception as exc:  # unpickling can raise anything (ImportError, ...)
        raise _LoadError(f"cannot unpickle the model s3://{config.bucket}/{config.model_key}: "
                         f"{type(exc).__name__}: {exc}") from exc
    try:
        prepro_fn = dill.loads(prepro_bytes)  # noqa: S301 - digest verified above
    except Exception as exc:
        raise _LoadError(f"cannot unpickle the preprocessing function "
                         f"s3://{config.bucket}/{config.prepro_key}: "
                         f"{type(exc).__name__}: {exc}") from exc
    if not callable(getattr(model, "predict", None)):
        raise _LoadError(f"the model s3://{config.bucket}/{config.model_key} "
                         f"({type(model).__name__}) has no predict method")
    if not callable(prepro_fn):
        raise _LoadError(f"the preprocessing function s3://{config.bucket}/"
                         f"{config.prepro_key} is a {type(prepro_fn).__name__}, not callable")
    return _Artifacts(model=model, prepro_fn=prepro_fn)


def _get_artifacts(phase: str = "request") -> tuple[_Artifacts, bool]:
    """The cached artifacts, loaded on first use.

    :param phase: when the load happens, for the log: ``init`` or ``request``.
    :returns: the artifacts and whether this call loaded them.
    :raises _LoadError: when loading fails (nothing is cached then).
    """
    global _ARTIFACTS
    cached = _ARTIFACTS
    if cached is not None:
        return cached, False
    with _LOCK:
        if _ARTIFACTS is not None:
            return _ARTIFACTS, False
        started = time.perf_counter()
        artifacts = _load_from_s3()
        _ARTIFACTS = artifacts
        _log_json(_LOG, logging.INFO, {
            "event": "artifacts_loaded",
            "phase": phase,
            "load_ms": round((time.perf_counter() - started) * 1000, 3),
            "model_type": type(artifacts.model).__name__,
        })
        return artifacts, True


#: Seconds an on-demand init waits for the artifacts (Lambda allows the init phase 10 s).
DEFAULT_INIT_WAIT_SECONDS = 8.0
#: Initialisation types whose init phase is not limited to 10 s.
_LONG_INITS = frozenset({"provisioned-concurrency", "snap-start"})


def _init_load() -> None:
    """Load the artifacts for the init phase; never raises (a failed load is logged and
    left to the first request, which retries it)."""
    try:
        _get_artifacts("init")
    except _LoadError as exc:
        _log_json(_LOG, logging.ERROR, {"event": "artifact_load_failed", "phase": "init",
                                        "message": str(exc)})
    except Exception as exc:  # an import must not fail: the first request retries
        _log_json(_LOG, logging.ERROR, {"event": "artifact_load_failed", "phase": "init",
                                        "error_type": type(exc).__name__})


def _init_wait_seconds(kind: str) -> float | None:
    """How long the init phase waits for the load (``None``: until it ends).

    :param kind: ``AWS_LAMBDA_INITIALIZATION_TYPE``.
    """
    if kind in _LONG_INITS:
        return None
    try:
        return max(0.0, float(os.environ.get("TDV_INIT_WAIT_SECONDS", "")))
    except ValueError:
        return DEFAULT_INIT_WAIT_SECONDS


def _load_at_init() -> bool:
    """Start loading the artifacts during Lambda's init phase (only when Lambda
    initialises this module: ``AWS_LAMBDA_INITIALIZATION_TYPE`` is set), and wait for the
    load as long as the init phase allows.

    The load holds the cache's lock, so a request that comes before it ends waits for it.

    :returns: whether the artifacts are loaded when the import ends.
    """
    kind = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "")
    if not kind:
        return False
    loader = threading.Thread(target=_init_load, name="tdv-init-load", daemon=True)
    loader.start()
    loader.join(_init_wait_seconds(kind))
    return _ARTIFACTS is not None


# --------------------------------------------------------------------------- requests


def _max_body_bytes() -> int:
    """The body size limit from ``TDV_MAX_BODY_BYTES`` (default 6 MB).

    :raises _LoadError: when the variable is set but not a positive integer.
    """
    global _BODY_LIMIT
    setting = os.environ.get("TDV_MAX_BODY_BYTES", "")
    if _BODY_LIMIT[0] == setting:  # the environment as last read: its value
        return _BODY_LIMIT[1]
    raw = setting.strip()
    if not raw:
        _BODY_LIMIT = (setting, DEFAULT_MAX_BODY_BYTES)
        return DEFAULT_MAX_BODY_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise _LoadError(f"TDV_MAX_BODY_BYTES must be a positive integer, got {raw!r}")
    _BODY_LIMIT = (setting, value)
    return value


_BODY_LIMIT: tuple[str | None, int] = (None, DEFAULT_MAX_BODY_BYTES)


def _short(value: Any, limit: int) -> str | None:
    """``value`` as a string cut to ``limit`` characters (``None`` stays ``None``).

    :param value: any value.
    :param limit: the maximum length.
    """
    if value is None:
        return None
    text = value if isinstance(value, str) else str(value)
    return text[:limit]


def _request_context(event: Any) -> Mapping[str, Any]:
    """The event's ``requestContext`` (empty when absent or malformed).

    :param event: the Lambda event.
    """
    if not isinstance(event, Mapping):
        return {}
    ctx = event.get("requestContext")
    return ctx if isinstance(ctx, Mapping) else {}


def _request_id(event: Any, context: Any) -> str:
    """API Gateway's request id, else Lambda's, else ``"unknown"``.

    :param event: the Lambda event.
    :param context: the Lambda context.
    """
    rid = _request_context(event).get("requestId")
    if not rid:
        rid = getattr(context, "aws_request_id", None)
    return _short(rid, 128) or "unknown"


def _method(event: Any) -> str | None:
    """The HTTP method of a v1 (``httpMethod``) or v2 (``requestContext.http.method``) event.

    :param event: the Lambda event.
    :returns: the method, or ``None`` when the event carries none.
    """
    if not isinstance(event, Mapping):
        return None
    if str(event.get("version")) == "2.0" or "httpMethod" not in event:
        http = _request_context(event).get("http")
        if isinstance(http, Mapping) and isinstance(http.get("method"), str):
            return str(http["method"])
    method = event.get("httpMethod")
    return method if isinstance(method, str) else None


def _is_base64(flag: Any) -> bool:
    """Whether ``isBase64Encoded`` says the body is base64.

    :param flag: the event's ``isBase64Encoded`` value.
    """
    if isinstance(flag, str):
        return flag.strip().lower() == "true"
    return flag is True


def _body_bytes(event: Mapping[str, Any], limit: int) -> bytes:
    """The request body as bytes, decoded from base64 when flagged.

    :param event: the Lambda event.
    :param limit: the largest accepted body in bytes.
    :raises _HttpError: 400 when missing or badly encoded, 413 when too large.
    """
    body = event.get("body")
    if body is None:
        raise _HttpError(400, "missing request body", reason="missing_body")
    if isinstance(body, str):
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates
            raise _HttpError(400, "request body is not valid UTF-8",
                             reason="bad_encoding") from exc
    elif isinstance(body, bytes | bytearray):
        raw = bytes(body)
    else:
        raise _HttpError(400, "request body must be a string", reason="bad_body_type")
    if _is_base64(event.get("isBase64Encoded")):
        if len(raw) > (limit + 2) // 3 * 4 + 4:  # too large even before decoding
            raise _HttpError(413, f"request body exceeds {limit} bytes", reason="too_large")
        try:
            raw = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _HttpError(400, "request body is not valid base64",
                             reason="bad_base64") from exc
    if len(raw) > limit:
        raise _HttpError(413, f"request body exceeds {limit} bytes", reason="too_large")
    if not raw.strip():
        raise _HttpError(400, "missing request body", reason="missing_body")
    return raw


def _reject_constant(name: str) -> Any:
    """Refuse ``NaN`` / ``Infinity``, which are not JSON.

    :param name: the constant's spelling.
    :raises ValueError: always.
    """
    raise ValueError(f"{name} is not valid JSON")


#: ``json.loads(text, parse_constant=_reject_constant)``, built once.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse_json(raw: bytes) -> Any:
    """Parse a strict JSON document.

    :param raw: the body bytes (UTF-8).
    :raises _HttpError: 400 when it is not valid JSON.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _HttpError(400, "request body is not valid UTF-8", reason="bad_encoding") from exc
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise _HttpError(400, "request body is not valid JSON", reason="bad_json") from exc


#: dtype kinds whose ``tolist()`` gives plain numbers: bool, signed, unsigned, float.
_NUMERIC_KINDS = frozenset("biuf")


def _to_jsonable(value: Any) -> Any:
    """Convert predictions (NumPy arrays and scalars, tuples, ...) to JSON-ready values.

    Non-finite floats become ``None``.

    :param value: the value to convert.
    :raises TypeError: when a value has no JSON form.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if isinstance(kind, str) and kind in _NUMERIC_KINDS and callable(
            getattr(value, "tolist", None)):
        try:  # NumPy arrays and scalars, pandas Series of numbers: no walk when all finite
            finite = kind in "biu" or bool((abs(value) < math.inf).all())
        except Exception:  # not NumPy-like after all: walk it below
            finite = False
        if finite:
            return value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return _to_jsonable(float(value))
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, Mapping):
        return {_json_key(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_to_jsonable(v) for v in value]
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # NumPy arrays and scalars, pandas Series, array.array
        return _to_jsonable(tolist())
    item = getattr(value, "item", None)
    if callable(item):
        return _to_jsonable(item())
    if hasattr(value, "__iter__"):
        return [_to_jsonable(v) for v in value]
    raise TypeError(f"prediction value of type {type(value).__name__} is not JSON serializable")


def _json_key(key: Any) -> str | int | float | bool | None:
    """A dictionary key that ``json.dumps`` accepts.

    :param key: the key.
    """
    if key is None or isinstance(key, str | int | float | bool):
        return key
    converted = _to_jsonable(key)
    if converted is None or isinstance(converted, str | int | float | bool):
        return converted  # type: ignore[no-any-return]
    return str(key)


def _describe(exc: BaseException) -> str:
    """``"Type: message"`` cut to :data:`MAX_ERROR_MESSAGE_CHARS` characters.

    :param exc: the exception.
    """
    try:
        message = str(exc)
    except Exception:  # a broken __str__
        message = ""
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    if len(text) > MAX_ERROR_MESSAGE_CHARS:
        text = text[: MAX_ERROR_MESSAGE_CHARS - 3] + "..."
    return text


def _response(status: int, payload: Mapping[str, Any],
              headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A proxy integration response.

    :param status: the HTTP status code.
    :param payload: the JSON body.
    :param headers: extra headers.
    """
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "body": _BODY_ENCODER.encode(payload),
        "isBase64Encoded": False,
    }


class _RequestState:
    """What the access log line reports about one request (``cold``: the execution
    environment's first request)."""

    def __init__(self) -> None:
        """Start with nothing known."""
        self.reason: str | None = None
        self.error_type: str | None = None
        self.cold = False


def _process(event: Any, method: str | None, state: _RequestState) -> dict[str, Any]:
    """Answer one request; client errors are raised as :class:`_HttpError`.

    :param event: the Lambda event.
    :param method: the HTTP method, if any.
    :param state: collects details for the access log.
    """
    if not isinstance(event, Mapping) or method is None:
        raise _HttpError(400, "not an API Gateway proxy event", reason="bad_event")
    if method != "POST":
        raise _HttpError(405, "method not allowed; use POST", reason="method_not_allowed",
                         headers={"Allow": "POST"})
    raw = _body_bytes(event, _max_body_bytes())
    payload = _parse_json(raw)
    artifacts, _ = _get_artifacts()
    try:
        features = artifacts.prepro_fn(payload)
        predictions = artifacts.model.predict(features)
    except INPUT_ERRORS as exc:
        state.error_type = type(exc).__name__
        raise _HttpError(422, "the input was rejected", reason="input_rejected") from exc
    converted = _to_jsonable(predictions)
    if not isinstance(converted, list):
        converted = [converted]
    return _response(200, {"predictions": converted})


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: JSON in, ``{"predictions": [...]}`` out.

    :param event: an API Gateway REST (v1) or HTTP API (v2) proxy event.
    :param context: the Lambda context.
    :returns: a proxy integration response; never raises.
    """
    global _SERVED
    started = time.perf_counter()
    state = _RequestState()
    state.cold, _SERVED = not _SERVED, True
    request_id = "unknown"
    method: str | None = None
    try:
        request_id = _request_id(event, context)
        method = _method(event)
        response = _process(event, method, state)
    except _HttpError as exc:
        state.reason = exc.reason
        body: dict[str, Any] = {"error": exc.message, "request_id": request_id}
        if exc.status == 422 and exc.__cause__ is not None:
            body["detail"] = _describe(exc.__cause__)
        response = _response(exc.status, body, exc.headers)
    except _LoadError as exc:
        state.reason = "artifacts_unavailable"
        _log_json(_LOG, logging.ERROR, {"event": "artifact_load_failed", "message": str(exc),
                                        "request_id": request_id})
        response = _internal_error(request_id)
    except Exception as exc:
        state.reason = "internal_error"
        state.error_type = type(exc).__name__
        # The type and the stack only: exception messages may quote the request body.
        stack = "".join(traceback.format_list(traceback.extract_tb(exc.__traceback__)))
        _log_json(_LOG, logging.ERROR, {"event": "unhandled_error",
                                        "error_type": type(exc).__name__, "stack": stack,
                                        "request_id": request_id})
        response = _internal_error(request_id)
    _log_access(response["statusCode"], started, request_id, method, context, state)
    return response


def _internal_error(request_id: str) -> dict[str, Any]:
    """The 500 answer, without details.

    :param request_id: the request id to quote.
    """
    return _response(500, {"error": "internal error", "request_id": request_id})


def _log_access(status: int, started: float, request_id: str, method: str | None,
                context: Any, state: _RequestState) -> None:
    """Write the request's single access log line (never the body).

    :param status: the answered status.
    :param started: ``time.perf_counter()`` at the start of the request.
    :param request_id: the request id.
    :param method: the HTTP method, if any.
    :param context: the Lambda context.
    :param state: the details collected while answering.
    """
    try:
        record: dict[str, Any] = {
            "event": "request",
            "status": status,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "request_id": request_id,
            "lambda_request_id": _short(getattr(context, "aws_request_id", None), 128),
            "method": _short(method, 16),
            "cold_start": state.cold,
        }
        if state.reason:
            record["reason"] = state.reason
        if state.error_type:
            record["error_type"] = state.error_type
        _log_json(_ACCESS_LOG, logging.INFO, record)
    except Exception:  # logging must never break the answer
        return


def _after_restore() -> None:
    """After a SnapStart restore: the snapshot's S3 client holds the credentials and
    connections of the environment that was snapshotted, and every restored environment
    would share the snapshot's random state. Drop the client (the next use makes one with
    this environment's credentials) and reseed ``random`` from the OS."""
    global _S3_CLIENT
    import random

    _S3_CLIENT = None
    random.seed()


def _register_after_restore() -> bool:
    """Register :func:`_after_restore` with the SnapStart runtime hooks of Lambda's Python
    runtimes (3.12 and newer ship ``snapshot_restore_py``); elsewhere, nothing to do."""
    try:
        from snapshot_restore_py import register_after_restore  # type: ignore[import-not-found]
    except ImportError:
        return False
    register_after_restore(_after_restore)
    return True


_register_after_restore()
_load_at_init()
