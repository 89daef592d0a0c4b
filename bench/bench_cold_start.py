"""Cold start of a function whose dependencies come as a bundle (prints ratios, no asserts).

Against the embedded moto server on loopback (S3's network is slower per connection and
gains more from parallel ranged GETs; read the download numbers with that in mind), with
every fidelity fix (``fix_s3_ranges`` makes a ranged GET read only its range, as S3 does):

* cold: a fresh process imports the request processor with ``TDV_DEPS_BUNDLE_KEY`` set and
  answers one request (ranged GETs, extraction while downloading, SHA-256, load the model,
  first predict), against the floor in a fresh process: one plain GET of the same bytes,
  ``ZipFile.extractall``, unpickling the model and one predict (goal <= 1.10); medians of
  ``--runs`` runs each, alternated;
* the bundle's download throughput (one GET; ranged GETs by 1-16 threads, and 8 threads on
  moto without ``fix_s3_ranges``), extraction after download (``ZipFile.extractall``; our
  stream reader by 1-8 threads) and extraction while downloading;
* warm: the handler's request against a bare ``model.predict(prepro(payload))`` on the
  parsed payload (goal <= 1.05), for the tiny iris model and for realistic ones, log lines
  written by a root handler as Lambda's runtime does (to /dev/null).

Run: ``.venv/bin/python bench/bench_cold_start.py [--runs 5]`` (the bundle is the layer
cache's scikit-learn + SciPy + pandas + pyarrow).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LAMBDA_SRC = REPO / "lambda_src"
BUCKET, BUNDLE, MODEL, PREPRO = "bench", "b/deps_bundle.zip", "m/model.pkl", "p/prepro.pkl"
ROW = [5.1, 3.5, 1.4, 0.2]

_COLD = """
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import lbd_request_processor as p
event = {"httpMethod": "POST", "body": json.dumps({"instances": [__ROW__]}),
         "requestContext": {"requestId": "r"}}
r = p.handler(event, None)
assert r["statusCode"] == 200, r
print(json.dumps({"s": time.perf_counter() - t0}))
""".replace("__ROW__", repr(ROW))

_FLOOR = """
import json, os, sys, time, zipfile, io, pickle
t0 = time.perf_counter()
import boto3
s3 = boto3.client("s3")
data = s3.get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"].read()
zipfile.ZipFile(io.BytesIO(data)).extractall(sys.argv[4])
sys.path.insert(0, os.path.join(sys.argv[4], "python"))
model = pickle.loads(s3.get_object(Bucket=sys.argv[1], Key=sys.argv[3])["Body"].read())
model.predict([__ROW__])
print(json.dumps({"s": time.perf_counter() - t0}))
""".replace("__ROW__", repr(ROW))


def mbps(nbytes: int, seconds: float) -> str:
    return f"{nbytes / 1e6 / seconds:6.0f} MB/s"


def settle() -> None:
    """Write dirty pages out, so that a run does not pay for the previous run's writes."""
    os.sync()


def timed(fn: Callable[..., Any], runs: int = 3, prepare: Callable[[], Any] | None = None
          ) -> float:
    """The median seconds of ``runs`` calls, each after :func:`settle` (and given what
    ``prepare``, untimed, returns)."""
    times = []
    for _ in range(runs):
        args = [] if prepare is None else [prepare()]
        settle()
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def child(script: str, args: list[str], env: dict[str, str]) -> float:
    """Seconds measured inside a fresh interpreter (its own start-up left out)."""
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, check=True,
                         capture_output=True, text=True, timeout=600)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["s"])


def file_chunks(path: str, size: int = 8 * 1024 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk


def cold(fn_env: dict[str, str], env: dict[str, str], tmp: str, runs: int) -> None:
    colds, floors = [], []
    for i in range(runs):
        settle()
        colds.append(child(_COLD, [str(LAMBDA_SRC)], {**fn_env, "TDV_BUNDLE_DIR": f"{tmp}/c{i}"}))
        settle()
        floors.append(child(_FLOOR, [BUCKET, BUNDLE, MODEL, f"{tmp}/floor{i}"], env))
        shutil.rmtree(f"{tmp}/floor{i}")
        if i:
            shutil.rmtree(f"{tmp}/c{i}")
    c, f = statistics.median(colds), statistics.median(floors)
    print(f"cold start {c:.2f} s (runs {', '.join(f'{t:.2f}' for t in colds)}), floor "
          f"(GET + extractall + unpickle + predict) {f:.2f} s (runs "
          f"{', '.join(f'{t:.2f}' for t in floors)}): ratio {c / f:.2f} (goal <= 1.10)")


def throughput(s3: Any, plain_s3: Any, data: bytes, unzipped: int, tmp: str) -> None:
    import tdv_bundle
    import tdv_unzip

    def fetch(client: Any, threads: int) -> None:
        digest = hashlib.sha256()
        for part in tdv_bundle.parts(client, BUCKET, BUNDLE, threads):
            digest.update(part)
        assert digest.hexdigest() == hashlib.sha256(data).hexdigest()

    single = timed(lambda: s3.get_object(Bucket=BUCKET, Key=BUNDLE)["Body"].read())
    print(f"download, one plain GET:                      {mbps(len(data), single)}")
    for threads in (1, 4, 8, 16):
        seconds = timed(lambda threads=threads: fetch(s3, threads))
        print(f"download + SHA-256, ranged GETs of 8 MiB, {threads:2d} threads: "
              f"{mbps(len(data), seconds)}")
    seconds = timed(lambda: fetch(plain_s3, 8), runs=1)
    print(f"  the same, 8 threads, moto without fix_s3_ranges: {mbps(len(data), seconds)}")
    path = f"{tmp}/bundle.zip"
    Path(path).write_bytes(data)

    def fresh() -> str:
        shutil.rmtree(f"{tmp}/x", ignore_errors=True)
        os.makedirs(f"{tmp}/x")
        return f"{tmp}/x"

    seconds = timed(lambda dest: zipfile.ZipFile(path).extractall(dest), prepare=fresh)
    print(f"extract after download, ZipFile.extractall:   {mbps(unzipped, seconds)} (unzipped)")
    for threads in (1, 2, 4, 8):
        seconds = timed(lambda dest, threads=threads: tdv_unzip.stream_extract(
            file_chunks(path), dest, threads), prepare=fresh)
        print(f"extract after download, tdv_unzip, {threads} threads: "
              f"{mbps(unzipped, seconds)} (unzipped)")
    seconds = timed(lambda dest: tdv_unzip.stream_extract(
        tdv_bundle.parts(s3, BUCKET, BUNDLE, 8), dest, 8), prepare=fresh)
    print(f"download + extract while downloading, 8 threads: {seconds:.2f} s = "
          f"{mbps(len(data), seconds)} zipped, {mbps(unzipped, seconds)} unzipped")


def warm(fn_env: dict[str, str], tmp: str, s3: Any, models: dict[str, tuple[Any, Any]]) -> None:
    """The handler's warm request against a bare predict(prepro(payload)), in this process."""
    import dill

    os.environ.update({**fn_env, "TDV_BUNDLE_DIR": f"{tmp}/c0"})
    os.environ.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)
    import lbd_request_processor as p

    lambda_like = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115
    lambda_like.setFormatter(logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(message)s"))
    logging.getLogger().addHandler(lambda_like)

    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # as on a function of one vCPU; both sides alike
        for name, (model, rows) in models.items():
            warm_one(p, s3, name, model, rows, dill.dumps(model))
    logging.getLogger().removeHandler(lambda_like)


def alternated(first: Callable[[], Any], second: Callable[[], Any], n: int,
               rounds: int = 15) -> tuple[float, float]:
    """Seconds per call of each, medians of ``rounds`` rounds of ``n`` calls taken in
    turn (so a change of load hits both alike), after one call of each."""
    first(), second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(rounds):
        for fn, out in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out.append((time.perf_counter() - t0) / n)
    return statistics.median(times[0]), statistics.median(times[1])


def warm_one(p: Any, s3: Any, name: str, model: Any, rows: list[Any], body: bytes) -> None:
    """One model's warm request against its bare predict(prepro(payload))."""
    key = f"m/warm-{len(body)}.pkl"
    s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    os.environ.update({"TDV_MODEL_KEY": key, "TDV_MODEL_SHA256": hashlib.sha256(body).hexdigest()})
    p._reset_cache()
    event = {"httpMethod": "POST", "body": json.dumps({"instances": rows}),
             "requestContext": {"requestId": "r"}}
    assert p.handler(event, None)["statusCode"] == 200
    payload = json.loads(event["body"])
    prepro = p._get_artifacts()[0].prepro_fn
    bare, handler = alternated(lambda: model.predict(prepro(payload)),
                               lambda: p.handler(event, None), 300 if len(rows) < 5 else 30)
    print(f"warm {name}: request {handler * 1e3:.3f} ms, bare predict(prepro(x)) "
          f"{bare * 1e3:.3f} ms: ratio {handler / bare:.3f} (goal <= 1.05), fixed cost "
          f"{(handler - bare) * 1e6:.0f} us")


class Constant:
    """A model whose predict costs next to nothing: the handler's fixed cost shows alone."""

    def predict(self, rows: list[Any]) -> list[int]:
        return [0] * len(rows)


def realistic_models() -> dict[str, tuple[Any, Any]]:
    from sklearn.datasets import load_iris, make_classification
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True)
    xs, ys = make_classification(n_samples=4000, n_features=20, random_state=13)
    batch = xs[:10].tolist()
    return {
        "constant model (the fixed cost alone), 1 row": (Constant(), [ROW]),
        "iris LogisticRegression, 1 row": (LogisticRegression(max_iter=500).fit(x, y), [ROW]),
        "RandomForest 100 trees (4,000 x 20), 10 rows": (
            RandomForestClassifier(100, random_state=13).fit(xs, ys), batch),
        "HistGradientBoosting (4,000 x 20), 10 rows": (
            HistGradientBoostingClassifier(random_state=13).fit(xs, ys), batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold and floor runs (median)")
    parser.add_argument("--parts", default="cold,throughput,warm",
                        help="comma-separated parts to run (cold, throughput, warm)")
    args = parser.parse_args()
    import boto3
    import dill

    from tdv_airflow.core.layers import Dependencies
    from tdv_airflow.local.aws import LocalAws
    from tdv_airflow.local.moto_server import FIXES

    data = Dependencies(from_installed=["scikit-learn", "scipy", "pandas", "pyarrow"]).build().data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        unzipped = sum(i.file_size for i in zf.infolist())
        files = len(zf.infolist())
    print(f"bundle: {len(data) / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped, "
          f"{files} files")
    models = realistic_models()
    model, _ = models["iris LogisticRegression, 1 row"]  # the cold start's model
    prepro = dill.dumps(lambda payload: payload["instances"], recurse=True)
    model_bytes = dill.dumps(model)
    plain = LocalAws(fixes=tuple(f for f in FIXES if f != "fix_s3_ranges"))
    with LocalAws() as aws, plain, tempfile.TemporaryDirectory(prefix="tdv-bench-") as tmp:
        env = {**os.environ, **aws.environ()}
        os.environ.update(aws.environ())
        s3 = boto3.client("s3")
        plain_s3 = boto3.client("s3", endpoint_url=plain.endpoint_url)
        for client in (s3, plain_s3):
            client.create_bucket(Bucket=BUCKET)
        for key, body in ((BUNDLE, data), (MODEL, model_bytes), (PREPRO, prepro)):
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        plain_s3.put_object(Bucket=BUCKET, Key=BUNDLE, Body=data)
        fn_env = {**env, "TDV_BUCKET": BUCKET, "TDV_MODEL_KEY": MODEL, "TDV_PREPRO_KEY": PREPRO,
                  "TDV_MODEL_SHA256": hashlib.sha256(model_bytes).hexdigest(),
                  "TDV_PREPRO_SHA256": hashlib.sha256(prepro).hexdigest(),
                  "TDV_PYTHON_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
                  "TDV_DILL_VERSION": dill.__version__, "TDV_DEPS_BUNDLE_KEY": BUNDLE,
                  "TDV_DEPS_BUNDLE_SHA256": hashlib.sha256(data).hexdigest(),
                  "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "TDV_INIT_WAIT_SECONDS": "600"}
        parts = set(args.parts.split(","))
        if "cold" in parts or "warm" in parts:  # warm reuses the first cold run's folder
            cold(fn_env, env, tmp, args.runs if "cold" in parts else 1)
        sys.path.insert(0, str(LAMBDA_SRC))
        if "throughput" in parts:
            throughput(s3, plain_s3, data, unzipped, tmp)
        if "warm" in parts:
            warm(fn_env, tmp, s3, models)


if __name__ == "__main__":
    main()
