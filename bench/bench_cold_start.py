"""Cold start of a function whose dependencies come as a bundle (prints ratios, no asserts).

Against the embedded moto server (loopback: S3's real network is slower per connection
and gains more from parallel ranged GETs; read the download numbers with that in mind):

* cold: a fresh process imports the request processor with ``TDV_DEPS_BUNDLE_KEY`` set and
  answers one request (fetch with ranged GETs + verify + extract in threads + load the
  model + first predict), against the floor: one plain GET of the same bytes,
  ``ZipFile.extractall``, unpickling the model and one predict (goal <= 1.10);
* the bundle's download and extraction throughput (MB/s) per strategy and format;
* warm: the handler's request against a bare ``predict(prepro(x))`` (goal <= 1.05).

Run: ``.venv/bin/python bench/bench_cold_start.py`` (the bundle is the layer cache's).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
LAMBDA_SRC = REPO / "lambda_src"
BUCKET, BUNDLE, MODEL, PREPRO = "bench", "b/deps_bundle.zip", "m/model.pkl", "p/prepro.pkl"

_COLD = """
import json, os, sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import lbd_request_processor as p
event = {"httpMethod": "POST", "body": json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}),
         "requestContext": {"requestId": "r"}}
r = p.handler(event, None)
assert r["statusCode"] == 200, r
print(json.dumps({"s": time.perf_counter() - t0}))
"""

_FLOOR = """
import json, os, sys, time, zipfile, io, pickle
t0 = time.perf_counter()
import boto3
s3 = boto3.client("s3")
data = s3.get_object(Bucket=sys.argv[1], Key=sys.argv[2])["Body"].read()
zipfile.ZipFile(io.BytesIO(data)).extractall(sys.argv[4])
sys.path.insert(0, os.path.join(sys.argv[4], "python"))
model = pickle.loads(s3.get_object(Bucket=sys.argv[1], Key=sys.argv[3])["Body"].read())
model.predict([[5.1, 3.5, 1.4, 0.2]])
print(json.dumps({"s": time.perf_counter() - t0}))
"""


def mbps(nbytes: int, seconds: float) -> str:
    return f"{nbytes / 1e6 / seconds:8.1f} MB/s"


def child(script: str, args: list[str], env: dict[str, str]) -> float:
    """Seconds measured inside a fresh interpreter (its own start-up left out)."""
    out = subprocess.run([sys.executable, "-c", script, *args], env=env, check=True,
                         capture_output=True, text=True, timeout=600)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["s"])


def main() -> None:
    import dill
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from tdv_airflow.core.layers import Dependencies
    from tdv_airflow.local.aws import LocalAws

    data = Dependencies(from_installed=["scikit-learn", "scipy", "pandas", "pyarrow"]).build().data
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        unzipped = sum(i.file_size for i in zf.infolist())
    print(f"bundle: {len(data) / 1e6:.1f} MB zipped, {unzipped / 1e6:.1f} MB unzipped")
    x, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(x, y)
    prepro = dill.dumps(lambda payload: payload["instances"], recurse=True)
    model_bytes = dill.dumps(model)
    with LocalAws() as aws, tempfile.TemporaryDirectory(prefix="tdv-bench-") as tmp:
        env = {**os.environ, **aws.environ()}
        os.environ.update(aws.environ())
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        for key, body in ((BUNDLE, data), (MODEL, model_bytes), (PREPRO, prepro)):
            s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        fn_env = {**env, "TDV_BUCKET": BUCKET, "TDV_MODEL_KEY": MODEL, "TDV_PREPRO_KEY": PREPRO,
                  "TDV_MODEL_SHA256": hashlib.sha256(model_bytes).hexdigest(),
                  "TDV_PREPRO_SHA256": hashlib.sha256(prepro).hexdigest(),
                  "TDV_PYTHON_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
                  "TDV_DILL_VERSION": dill.__version__, "TDV_DEPS_BUNDLE_KEY": BUNDLE,
                  "TDV_DEPS_BUNDLE_SHA256": hashlib.sha256(data).hexdigest(),
                  "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand", "TDV_INIT_WAIT_SECONDS": "600"}
        runs = 3
        colds, floors = [], []
        for i in range(runs):
            colds.append(child(_COLD, [str(LAMBDA_SRC)],
                               {**fn_env, "TDV_BUNDLE_DIR": f"{tmp}/cold{i}"}))
            floors.append(child(_FLOOR, [BUCKET, BUNDLE, MODEL, f"{tmp}/floor{i}"], env))
        cold, floor = min(colds), min(floors)
        print(f"cold start {cold:.2f} s, floor (GET + extractall + unpickle + predict) "
              f"{floor:.2f} s: ratio {cold / floor:.2f} (goal <= 1.10)")

        sys.path.insert(0, str(LAMBDA_SRC))
        import tdv_bundle

        for threads in (1, 4, 8, 16):
            t0 = time.perf_counter()
            got = tdv_bundle.download(s3, BUCKET, BUNDLE, f"{tmp}/dl{threads}", threads)
            ok = "" if got == hashlib.sha256(data).hexdigest() else " DIGEST MISMATCH"
            print(f"download, {threads:2d} ranged GETs of 8 MiB: "
                  f"{mbps(len(data), time.perf_counter() - t0)}{ok}")
        t0 = time.perf_counter()
        s3.get_object(Bucket=BUCKET, Key=BUNDLE)["Body"].read()
        print(f"download, one plain GET:           {mbps(len(data), time.perf_counter() - t0)}")
        Path(f"{tmp}/layer.zip").write_bytes(data)
        formats = {"zip deflate-6 (the layer's)": f"{tmp}/layer.zip"}
        stored = f"{tmp}/stored.zip"
        with zipfile.ZipFile(f"{tmp}/layer.zip") as src, zipfile.ZipFile(stored, "w") as out:
            for info in src.infolist():
                content = src.read(info)
                info.compress_type = zipfile.ZIP_STORED
                out.writestr(info, content)
        formats["zip stored"] = stored
        for name, path in formats.items():
            size = os.path.getsize(path)
            for threads in (1, 2, 4, 8):
                dest = tempfile.mkdtemp(dir=tmp)
                t0 = time.perf_counter()
                tdv_bundle.extract(path, dest, threads)
                print(f"extract {name} ({size / 1e6:.0f} MB), {threads} threads: "
                      f"{mbps(unzipped, time.perf_counter() - t0)} (unzipped bytes)")
            dest = tempfile.mkdtemp(dir=tmp)
            t0 = time.perf_counter()
            zipfile.ZipFile(path).extractall(dest)
            print(f"extract {name}, ZipFile.extractall: "
                  f"{mbps(unzipped, time.perf_counter() - t0)}")
        tar_path = f"{tmp}/bundle.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(dest, arcname=".")
        dest = tempfile.mkdtemp(dir=tmp)
        t0 = time.perf_counter()
        with tarfile.open(tar_path) as tar:
            tar.extractall(dest, filter="data")
        print(f"extract tar (uncompressed, {os.path.getsize(tar_path) / 1e6:.0f} MB), "
              f"tarfile.extractall: {mbps(unzipped, time.perf_counter() - t0)}")
        warm(fn_env, tmp, model, x[:1].tolist())


def warm(fn_env: dict[str, str], tmp: str, model: Any, rows: list[Any]) -> None:
    """The handler's warm request against a bare predict(prepro(x)), in this process."""
    os.environ.update({**fn_env, "TDV_BUNDLE_DIR": f"{tmp}/cold0"})
    os.environ.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)
    import lbd_request_processor as p

    event = {"httpMethod": "POST", "body": json.dumps({"instances": rows}),
             "requestContext": {"requestId": "r"}}
    p.handler(event, None)
    n = 300

    def best(fn: Any) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times.append((time.perf_counter() - t0) / n)
        return min(times)

    handler = best(lambda: p.handler(event, None))
    bare = best(lambda: model.predict(json.loads(event["body"])["instances"]))
    print(f"warm request {handler * 1e3:.3f} ms, bare predict(prepro(x)) {bare * 1e3:.3f} ms: "
          f"ratio {handler / bare:.2f} (goal <= 1.05)")


if __name__ == "__main__":
    main()
