"""Helpers shared by the request processor tests: events, context, artifacts on S3."""

from __future__ import annotations

import base64
import functools
import hashlib
import importlib
import io
import json
import os
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

LAMBDA_SRC = Path(__file__).resolve().parents[1] / "lambda_src"
MODEL_KEY = "models/iris/model.pkl"
PREPRO_KEY = "prepro/iris/prepro_fn.pkl"


def load_processor() -> ModuleType:
    """The Lambda module, imported the way Lambda does (``lambda_src`` on the path)."""
    if str(LAMBDA_SRC) not in sys.path:
        sys.path.insert(0, str(LAMBDA_SRC))
    return importlib.import_module("lbd_request_processor")


@dataclass
class FakeContext:
    """The attributes of a Lambda context the handler may read."""

    aws_request_id: str = "lambda-req-0001"
    function_name: str = "tdv-predict"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:tdv-predict"
    log_group_name: str = "/aws/lambda/tdv-predict"
    extra: dict[str, Any] = field(default_factory=dict)

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _encode(body: str | bytes | None, b64: bool) -> tuple[str | None, bool]:
    if body is None:
        return None, b64
    if b64:
        raw = body.encode("utf-8") if isinstance(body, str) else body
        return base64.b64encode(raw).decode("ascii"), True
    assert isinstance(body, str)
    return body, False


def v1_event(body: str | bytes | None, *, method: str = "POST", b64: bool = False,
             headers: dict[str, str] | None = None, request_id: str = "apigw-v1-req") -> dict:
    """An API Gateway REST (payload v1) proxy event for ``POST /predict``."""
    encoded, flag = _encode(body, b64)
    return {
        "resource": "/predict",
        "path": "/predict",
        "httpMethod": method,
        "headers": headers if headers is not None else {"Content-Type": "application/json"},
        "multiValueHeaders": None,
        "queryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": "/predict",
            "httpMethod": method,
            "path": "/prod/predict",
            "stage": "prod",
            "requestId": request_id,
            "identity": {"sourceIp": "203.0.113.7"},
        },
        "body": encoded,
        "isBase64Encoded": flag,
    }


def v2_event(body: str | bytes | None, *, method: str = "POST", b64: bool = False,
             headers: dict[str, str] | None = None, request_id: str = "apigw-v2-req") -> dict:
    """An HTTP API (payload v2) proxy event for ``POST /predict``."""
    encoded, flag = _encode(body, b64)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "POST /predict",
        "rawPath": "/predict",
        "rawQueryString": "",
        "headers": headers if headers is not None else {"content-type": "application/json"},
        "requestContext": {
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "http": {"method": method, "path": "/predict", "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.7", "userAgent": "pytest"},
            "requestId": request_id,
            "routeKey": "POST /predict",
            "stage": "$default",
        },
        "isBase64Encoded": flag,
    }
    if encoded is not None:
        event["body"] = encoded
    return event


@functools.lru_cache(maxsize=1)
def iris() -> tuple[Any, Any]:
    """The iris features and labels."""
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target


@functools.lru_cache(maxsize=1)
def iris_model() -> Any:
    """A LogisticRegression trained on iris."""
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    return LogisticRegression(max_iter=1000).fit(x, y)


def prepro_instances(payload: Any) -> list[Any]:
    """The user's preprocessing function: the rows under ``instances``."""
    return [row for row in payload["instances"]]


def prepro_crashing(payload: Any) -> Any:
    """A preprocessing function with a bug that quotes its input."""
    raise RuntimeError(f"unexpected failure on {payload!r}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_bytes(model: Any | None = None) -> bytes:
    import dill

    return bytes(dill.dumps(model if model is not None else iris_model()))


def joblib_bytes(model: Any | None = None) -> bytes:
    import joblib

    buf = io.BytesIO()
    joblib.dump(model if model is not None else iris_model(), buf)
    return buf.getvalue()


def prepro_bytes(fn: Any = prepro_instances) -> bytes:
    from tdv_airflow.core.pickling import dumps_by_value

    return dumps_by_value(fn)


class LeavesMarker:
    """Unpickling this object creates a directory: proof that it was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.mkdir, (self.marker,)


def marker_pickle(marker: Path) -> bytes:
    return pickle.dumps(LeavesMarker(marker))


@dataclass
class Deployment:
    """Artifacts uploaded to the emulator and the env vars that describe them."""

    s3: Any
    bucket: str
    model_key: str
    prepro_key: str
    env: dict[str, str]


def deploy(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, *,
           model: bytes | None = None, prepro: bytes | None = None,
           model_key: str = MODEL_KEY, prepro_key: str = PREPRO_KEY,
           model_sha256: str | None = None, prepro_sha256: str | None = None) -> Deployment:
    """Upload the artifacts and export the function's environment contract."""
    import dill

    model = model if model is not None else model_bytes()
    prepro = prepro if prepro is not None else prepro_bytes()
    s3.put_object(Bucket=bucket, Key=model_key, Body=model)
    s3.put_object(Bucket=bucket, Key=prepro_key, Body=prepro)
    env = {
        "TDV_BUCKET": bucket,
        "TDV_MODEL_KEY": model_key,
        "TDV_MODEL_SHA256": model_sha256 or sha256(model),
        "TDV_PREPRO_KEY": prepro_key,
        "TDV_PREPRO_SHA256": prepro_sha256 or sha256(prepro),
        "TDV_PYTHON_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
        "TDV_DILL_VERSION": dill.__version__,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TDV_MAX_BODY_BYTES", raising=False)
    return Deployment(s3=s3, bucket=bucket, model_key=model_key, prepro_key=prepro_key,
                      env=env)


def instances_body(rows: Any) -> str:
    return json.dumps({"instances": rows.tolist() if hasattr(rows, "tolist") else rows})


def answer(response: dict) -> Any:
    """The parsed body of a proxy response (strict JSON: no NaN/Infinity)."""
    def no_constants(name: str) -> Any:
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(response["body"], parse_constant=no_constants)
