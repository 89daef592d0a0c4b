"""Small models and deployments on the emulator: a model that needs no library, a
``Deploy`` with fast polling (the base of :func:`testkit.deployed.deploy_stack`)."""

from __future__ import annotations

import pickle
import types
from typing import Any

from tdv_airflow import Deploy, UserAwsAuth

REGION = "us-east-1"
MODEL_KEY = "models/sec/v1/model.pkl"


def rows_of(payload: dict[str, Any]) -> list[list[float]]:
    """The preprocessing function: the request's rows as floats."""
    return [[float(v) for v in row] for row in payload["rows"]]


def sum_model_bytes() -> bytes:
    """A pickled model whose ``predict`` sums each row (no library needed to load it).

    A lambda is pickled by value by dill, so the function process (which cannot import
    the tests) can load it.
    """
    import dill

    model = types.SimpleNamespace(predict=lambda rows: [sum(r) for r in rows])
    data: bytes = dill.dumps(model, recurse=True)
    return data


def scaled_model_bytes(factor: float) -> bytes:
    """A pickled model whose ``predict`` gives each row's sum times ``factor`` (another
    model than :func:`sum_model_bytes`, to tell versions apart by their answers).

    :param factor: the factor.
    """
    import dill

    model = types.SimpleNamespace(predict=lambda rows: [sum(r) * factor for r in rows])
    data: bytes = dill.dumps(model, recurse=True)
    return data


def put_model(s3: Any, bucket: str, key: str = MODEL_KEY, raw_pickle: bool = False) -> bytes:
    """Upload the model (``raw_pickle``: a plain pickle of a dict, for IAM-only tests)."""
    body = pickle.dumps({"not": "a model"}) if raw_pickle else sum_model_bytes()
    s3.put_object(Bucket=bucket, Key=key, Body=body)
    return body


def make_deploy(auth: UserAwsAuth, bucket: str, stack_name: str, **kw: Any) -> Deploy:
    """A ``Deploy`` on the emulator with fast polling.

    :param auth: the credentials and the emulator's endpoint.
    :param bucket: the model's bucket.
    :param stack_name: the stack.
    :param kw: further ``Deploy`` arguments; ``model_s3_key`` defaults to
        :data:`MODEL_KEY`, ``prepro_fn`` to :func:`rows_of`, ``poll_interval`` to 0.1 s.
    """
    return Deploy(bucket, kw.pop("model_s3_key", MODEL_KEY), kw.pop("prepro_fn", rows_of),
                  auth, region=REGION, stack_name=stack_name,
                  poll_interval=kw.pop("poll_interval", 0.1), max_attempts=100, **kw)


def access_denied(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what it was raised from) is an AWS access denial."""
    while exc is not None:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        if code in {"AccessDenied", "AccessDeniedException", "403", "Forbidden"}:
            return True
        exc = exc.__cause__ or exc.__context__
    return False
