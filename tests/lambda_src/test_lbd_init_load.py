"""In Lambda the request processor loads the model during the init phase, not within
the first request's 29 s; a load that fails there is retried by the first request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from testkit import lambda_fixtures as lf

#: Imports the module as Lambda's runtime does, then answers one request; prints what
#: the module held after the import, the S3 calls the request made and the response.
SCRIPT = textwrap.dedent(f"""
    import json, logging, sys
    sys.path.insert(0, {str(lf.LAMBDA_SRC)!r})
    lines = []
    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())
    logging.getLogger("lbd_request_processor").addHandler(Keep())
    import lbd_request_processor as m
    loaded_at_import = m._ARTIFACTS is not None
    if sys.argv[2] == "restore":
        import boto3
        s3 = boto3.client("s3")
        s3.put_object(Bucket=sys.argv[3], Key=sys.argv[4], Body=open(sys.argv[5], "rb").read())
    calls = []
    m._s3_client().meta.events.register("before-call.s3",
                                        lambda model, **_: calls.append(model.name))
    response = m.handler(json.loads(sys.argv[1]), None)
    print(json.dumps({{"loaded_at_import": loaded_at_import, "calls": calls,
                      "response": response, "lines": [json.loads(x) for x in lines]}}))
""")


def run(event: dict[str, Any], tmp_path: Path, *args: str, lambda_init: str = "on-demand",
        init_wait: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    env.pop("AWS_LAMBDA_INITIALIZATION_TYPE", None)
    env.pop("TDV_INIT_WAIT_SECONDS", None)
    if lambda_init:
        env["AWS_LAMBDA_INITIALIZATION_TYPE"] = lambda_init
    if init_wait is not None:
        env["TDV_INIT_WAIT_SECONDS"] = init_wait
    out = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(event), *args],
                         capture_output=True, text=True, cwd=tmp_path, env=env, check=False,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def events(result: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [line for line in result["lines"] if line.get("event") == name]


def test_lambda_init_loads_the_artifacts_and_the_first_request_reads_nothing(
        s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lf.deploy(s3, bucket, monkeypatch)
    x = lf.iris()[0][:4]
    result = run(lf.v1_event(lf.instances_body(x)), tmp_path, "keep")
    assert result["loaded_at_import"] is True
    assert result["calls"] == []  # the first request reads nothing from S3
    assert result["response"]["statusCode"] == 200
    assert lf.answer(result["response"])["predictions"] == lf.iris_model().predict(x).tolist()
    assert [e["phase"] for e in events(result, "artifacts_loaded")] == ["init"]
    access = events(result, "request")
    assert [a["cold_start"] for a in access] == [True]


def test_outside_lambda_the_import_loads_nothing(
        s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    lf.deploy(s3, bucket, monkeypatch)
    result = run(lf.v1_event(lf.instances_body(lf.iris()[0][:2])), tmp_path, "keep",
                 lambda_init="")
    assert result["loaded_at_import"] is False
    assert result["response"]["statusCode"] == 200
    assert "GetObject" in result["calls"]
    assert [e["phase"] for e in events(result, "artifacts_loaded")] == ["request"]


def test_a_failed_init_load_is_retried_by_the_first_request(
        s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    deployed = lf.deploy(s3, bucket, monkeypatch)
    model = tmp_path / "model.pkl"
    model.write_bytes(s3.get_object(Bucket=bucket, Key=deployed.model_key)["Body"].read())
    s3.delete_object(Bucket=bucket, Key=deployed.model_key)  # missing while Lambda inits
    result = run(lf.v1_event(lf.instances_body(lf.iris()[0][:3])), tmp_path, "restore",
                 bucket, deployed.model_key, str(model))
    assert result["loaded_at_import"] is False
    failed = events(result, "artifact_load_failed")
    assert failed and failed[0]["phase"] == "init" and deployed.model_key in failed[0]["message"]
    assert result["response"]["statusCode"] == 200  # the request loaded them
    assert [e["phase"] for e in events(result, "artifacts_loaded")] == ["request"]


def test_a_load_longer_than_the_init_wait_goes_on_and_the_first_request_waits_for_it(
        s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An on-demand init waits at most TDV_INIT_WAIT_SECONDS (Lambda ends it after 10 s);
    the load goes on and the first request waits for it instead of loading again."""
    lf.deploy(s3, bucket, monkeypatch)
    x = lf.iris()[0][:2]
    result = run(lf.v1_event(lf.instances_body(x)), tmp_path, "keep", init_wait="0")
    assert result["response"]["statusCode"] == 200
    assert lf.answer(result["response"])["predictions"] == lf.iris_model().predict(x).tolist()
    assert len(events(result, "artifacts_loaded")) == 1  # loaded once, not again


@pytest.mark.parametrize("kind", ["provisioned-concurrency", "snap-start"])
def test_long_inits_wait_for_the_whole_load(s3: Any, bucket: str, kind: str,
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    lf.deploy(s3, bucket, monkeypatch)
    result = run(lf.v1_event(lf.instances_body(lf.iris()[0][:2])), tmp_path, "keep",
                 lambda_init=kind, init_wait="0")  # the wait applies to on-demand only
    assert result["loaded_at_import"] is True
    assert result["calls"] == []
