"""Serving costs of the request processor, against their floors.

Run inside the project's venv:  python bench/bench_serving.py [--repeat 15] [--local-run]

* cold start: the first request of a fresh execution environment through the real
  handler (``lambda_src/lbd_request_processor.py``, in process, S3 on the local
  emulator): S3 client, two downloads, digest and version checks, unpickling, then one
  prediction. Floor: a new boto3 client, the same two ``get_object`` calls and the two
  ``loads``, nothing else. Imports are warm in both (one untimed round first), so this
  measures the handler's own overhead, not Python's import time.
* warm request: one more request through the handler (event parsing, JSON in and out,
  logging) against a bare ``model.predict(prepro_fn(payload))``, for a 100-tree
  RandomForest and one row.
* with ``--local-run``: the same warm request through ``tdv_airflow.local.process`` (a
  deployed stack run in its own process from the artifacts in S3), against the
  in-process handler.

Prints medians and their ratios.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import pickle
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the harness shared with the tests (testkit)

from tdv_airflow.core.pickling import dumps_by_value  # noqa: E402
from tdv_airflow.core.resources import default_lambda_source_path  # noqa: E402
from tdv_airflow.local.aws import LocalAws  # noqa: E402

BUCKET = "bench-serving"
MODEL_KEY = "models/rf100/model.pkl"
PREPRO_KEY = "prepro/prepro_fn.pkl"
ROW = [5.9, 3.0, 5.1, 1.8]


def prepro(payload: dict[str, Any]) -> list[list[float]]:
    return [[float(v) for v in payload["features"]]]


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    return paired_medians([fn], repeat)[0]


def paired_medians(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Median milliseconds of each function, run in turn in every round (so drift and
    noise of the shared machine hit them alike)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000)
    return [statistics.median(t) for t in times]


def load_handler_module() -> Any:
    spec = importlib.util.spec_from_file_location("lbd_request_processor",
                                                  default_lambda_source_path())
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def event(body: dict[str, Any]) -> dict[str, Any]:
    return {"resource": "/predict", "path": "/predict", "httpMethod": "POST",
            "headers": {"Content-Type": "application/json"}, "body": json.dumps(body),
            "isBase64Encoded": False, "requestContext": {"requestId": "bench"}}


class Context:
    aws_request_id = "bench"


def main() -> None:
    import boto3
    import dill
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--local-run", action="store_true",
                        help="also time warm requests through tdv_airflow.local.process")
    args = parser.parse_args()
    logging.getLogger("lbd_request_processor").disabled = True

    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    model_bytes = pickle.dumps(model)
    prepro_bytes = dumps_by_value(prepro)
    payload = {"features": ROW}

    with LocalAws() as aws:
        for name, value in aws.environ().items():
            os.environ[name] = value
        s3 = boto3.client("s3", endpoint_url=aws.endpoint_url)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=MODEL_KEY, Body=model_bytes)
        s3.put_object(Bucket=BUCKET, Key=PREPRO_KEY, Body=prepro_bytes)
        os.environ.update({
            "TDV_BUCKET": BUCKET,
            "TDV_MODEL_KEY": MODEL_KEY,
            "TDV_MODEL_SHA256": hashlib.sha256(model_bytes).hexdigest(),
            "TDV_PREPRO_KEY": PREPRO_KEY,
            "TDV_PREPRO_SHA256": hashlib.sha256(prepro_bytes).hexdigest(),
            "TDV_PYTHON_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
            "TDV_DILL_VERSION": dill.__version__,
        })
        handler_module = load_handler_module()

        def cold() -> None:
            handler_module._reset_cache()  # a fresh execution environment
            response = handler_module.handler(event(payload), Context())
            assert response["statusCode"] == 200, response

        def floor() -> None:
            client = boto3.client("s3")
            m = pickle.loads(client.get_object(Bucket=BUCKET, Key=MODEL_KEY)["Body"].read())
            f = dill.loads(client.get_object(Bucket=BUCKET, Key=PREPRO_KEY)["Body"].read())
            m.predict(f(payload))

        def warm() -> None:
            handler_module.handler(event(payload), Context())

        def bare() -> None:
            model.predict(prepro(payload))

        cold(), floor()  # imports and first-use costs out of the way
        cold_ms, floor_ms = paired_medians([cold, floor], args.repeat)
        cold()
        warm_ms, bare_ms = paired_medians([warm, bare], args.repeat * 10)

        print(f"model: RandomForest, 100 trees, {len(model_bytes) / 1e6:.2f} MB pickled; "
              f"one row; {args.repeat} cold / {args.repeat * 10} warm repetitions (median)")
        print(f"cold start through the handler:        {cold_ms:8.2f} ms")
        print(f"floor (boto3 reads + loads + predict): {floor_ms:8.2f} ms")
        print(f"ratio cold / floor:                    {cold_ms / floor_ms:8.2f}")
        print(f"warm request through the handler:      {warm_ms:8.3f} ms")
        print(f"bare model.predict(prepro_fn(x)):      {bare_ms:8.3f} ms")
        print(f"ratio warm / bare:                     {warm_ms / bare_ms:8.2f}")
        if args.local_run:
            bench_local_run(aws, model_bytes, payload, warm_ms, args.repeat)


def bench_local_run(aws: LocalAws, model_bytes: bytes, payload: dict[str, Any],
                    warm_ms: float, repeat: int) -> None:
    from tdv_airflow.core.layers import Dependencies
    from tdv_airflow.local.process import LocalFunction
    from testkit.deployed import deploy_stack

    deps = Dependencies(from_installed=("sklearn",), compresslevel=1)
    t0 = time.perf_counter()
    stack = deploy_stack(aws.endpoint_url, BUCKET, "bench-serving", model=model_bytes,
                         model_key=MODEL_KEY, prepro_fn=prepro, dependencies=deps)
    deploy_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as workdir:
        function = LocalFunction(stack.clients, "bench-serving", workdir=Path(workdir))
        t0 = time.perf_counter()
        function.prepare()
        layout_s = time.perf_counter() - t0
        with function:
            t0 = time.perf_counter()
            first = function.invoke(payload)
            first_s = time.perf_counter() - t0
            assert first["statusCode"] == 200, first
            local_ms = median_ms(lambda: function.invoke(payload), repeat * 10)
    print(f"local run: deploy with a from_installed layer {deploy_s:.1f} s, first layout "
          f"{layout_s:.1f} s, first request {first_s:.2f} s")
    print(f"warm request through local_run:        {local_ms:8.3f} ms")
    print(f"ratio local_run / in-process handler:  {local_ms / warm_ms:8.2f}")


if __name__ == "__main__":
    main()
