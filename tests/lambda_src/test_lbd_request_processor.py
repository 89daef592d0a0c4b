"""The Lambda request processor against real S3 on the emulator."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from testkit import lambda_fixtures as lf

ACCESS_LOGGER = "lbd_request_processor.access"


@pytest.fixture
def proc() -> Any:
    module = lf.load_processor()
    module._reset_cache()
    yield module
    module._reset_cache()


@pytest.fixture
def deployed(s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch) -> lf.Deployment:
    return lf.deploy(s3, bucket, monkeypatch)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == ACCESS_LOGGER]


def all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records) + caplog.text


def rows(n: int = 10, start: int = 0) -> Any:
    x, _ = lf.iris()
    return x[start:start + n]


# --------------------------------------------------------------------------- import


def test_import_is_lazy_and_never_pulls_the_project_or_the_model_stack(tmp_path: Path) -> None:
    """Importing the module (as Lambda does) touches neither S3 nor tdv_airflow/dill/sklearn."""
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(lf.LAMBDA_SRC)!r})
        import lbd_request_processor as m
        assert m._S3_CLIENT is None and m._ARTIFACTS is None
        heavy = sorted(n for n in ("tdv_airflow", "dill", "sklearn", "numpy", "joblib")
                       if n in sys.modules)
        assert not heavy, heavy
        print("ok")
    """)
    env = {"PATH": "/usr/bin:/bin", "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
           "AWS_DEFAULT_REGION": "us-east-1"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path, env=env, check=False, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_cold_request_in_a_clean_process_without_the_test_modules(
        deployed: lf.Deployment, tmp_path: Path) -> None:
    """The by-value prepro pickle loads where its defining module does not exist."""
    event = lf.v1_event(lf.instances_body(rows(5)))
    script = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(lf.LAMBDA_SRC)!r})
        import importlib.util
        assert importlib.util.find_spec("lambda_fixtures") is None
        import lbd_request_processor as m
        resp = m.handler(json.loads(sys.argv[1]), None)
        assert "tdv_airflow" not in sys.modules, "handler imported tdv_airflow"
        print(json.dumps(resp))
    """)
    out = subprocess.run([sys.executable, "-c", script, json.dumps(event)],
                         capture_output=True, text=True, cwd=tmp_path, check=False,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    resp = json.loads(out.stdout.strip().splitlines()[-1])
    assert resp["statusCode"] == 200, resp
    assert lf.answer(resp)["predictions"] == lf.iris_model().predict(rows(5)).tolist()


# --------------------------------------------------------------------------- 200


@pytest.mark.parametrize("make_event", [lf.v1_event, lf.v2_event], ids=["v1", "v2"])
@pytest.mark.parametrize("b64", [False, True], ids=["plain", "base64"])
def test_predictions_equal_the_model_in_process(proc: ModuleType, deployed: lf.Deployment,
                                                make_event: Any, b64: bool) -> None:
    x = rows(30, start=60)
    resp = proc.handler(make_event(lf.instances_body(x), b64=b64), lf.FakeContext())
    assert resp["statusCode"] == 200, resp
    assert resp["headers"]["Content-Type"] == "application/json"
    expected = lf.iris_model().predict(x).tolist()
    assert lf.answer(resp) == {"predictions": expected}
    assert len(set(expected)) > 1  # the rows span several classes


def test_joblib_model(proc: ModuleType, s3: Any, bucket: str,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.ensemble import RandomForestClassifier

    x, y = lf.iris()
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, y)
    lf.deploy(s3, bucket, monkeypatch, model=lf.joblib_bytes(forest),
              model_key="models/iris/forest.joblib")
    resp = proc.handler(lf.v2_event(lf.instances_body(x[::7])), lf.FakeContext())
    assert resp["statusCode"] == 200, resp
    assert lf.answer(resp)["predictions"] == forest.predict(x[::7]).tolist()


def test_regressor_float_predictions(proc: ModuleType, s3: Any, bucket: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.linear_model import LinearRegression

    x, y = lf.iris()
    reg = LinearRegression().fit(x, y.astype(float))
    lf.deploy(s3, bucket, monkeypatch, model=lf.model_bytes(reg))
    resp = proc.handler(lf.v1_event(lf.instances_body(x[:4])), lf.FakeContext())
    assert resp["statusCode"] == 200, resp
    assert lf.answer(resp)["predictions"] == pytest.approx(reg.predict(x[:4]).tolist())


def test_to_jsonable_converts_numpy_tuples_and_non_finite(proc: ModuleType) -> None:
    import numpy as np

    value = {
        "arr": np.array([[1, 2], [3, 4]], dtype=np.int64),
        "f32": np.float32(0.5),
        "tuple": (np.int8(1), np.bool_(True), "a"),
        "nan": [float("nan"), np.float64("inf"), np.nan],
        np.int64(7): np.array(["x", "y"]),
        "set": frozenset([3]),
    }
    out = proc._to_jsonable(value)
    assert out == {"arr": [[1, 2], [3, 4]], "f32": 0.5, "tuple": [1, True, "a"],
                   "nan": [None, None, None], 7: ["x", "y"], "set": [3]}
    json.dumps(out, allow_nan=False)
    with pytest.raises(TypeError, match="object"):
        proc._to_jsonable(object())


# --------------------------------------------------------------------------- warm


def test_warm_request_makes_no_s3_call(proc: ModuleType, deployed: lf.Deployment,
                                       logs: pytest.LogCaptureFixture) -> None:
    x = rows(8, start=100)
    event = lf.v1_event(lf.instances_body(x))
    first = proc.handler(event, lf.FakeContext())
    assert first["statusCode"] == 200

    calls: list[str] = []
    proc._S3_CLIENT.meta.events.register(
        "before-call.s3", lambda model, **_: calls.append(model.name))
    for key in (deployed.model_key, deployed.prepro_key):
        deployed.s3.delete_object(Bucket=deployed.bucket, Key=key)
    deployed.s3.delete_bucket(Bucket=deployed.bucket)

    second = proc.handler(event, lf.FakeContext())
    assert second["statusCode"] == 200
    assert lf.answer(second) == lf.answer(first)
    assert calls == []
    assert [line["cold_start"] for line in access_lines(logs)] == [True, False]

    # The cache is what answered: without it the same request cannot be served.
    proc._reset_cache()
    third = proc.handler(event, lf.FakeContext())
    assert third["statusCode"] == 500


def test_s3_client_is_created_once_with_the_retry_and_timeout_config(proc: ModuleType) -> None:
    client = proc._s3_client()
    assert proc._s3_client() is client
    config = client.meta.config
    # botocore reads max_attempts=3 as 3 retries, i.e. 4 attempts in all.
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert (config.connect_timeout, config.read_timeout) == (5, 30)


# --------------------------------------------------------------------------- 400


@pytest.mark.parametrize("event", [
    lf.v1_event("{"),
    lf.v1_event("not json at all"),
    lf.v1_event('{"instances": [[1, 2, 3, NaN]]}'),
    lf.v1_event('{"a": 1} trailing'),
    lf.v1_event(None),
    lf.v1_event(""),
    lf.v1_event("   \n"),
    lf.v2_event(None),
    lf.v2_event("[" * 100_000),
    lf.v1_event(b"\xff\xfe\x00garbage", b64=True),
    {**lf.v1_event("e30="), "isBase64Encoded": True, "body": "***not base64***"},
    {**lf.v1_event("{}"), "body": {"instances": [[1, 2, 3, 4]]}},
    {},
    {"foo": "bar"},
    "a string event",
    None,
], ids=["open-brace", "text", "nan", "trailing", "v1-none", "empty", "blank", "v2-missing",
        "deep-nesting", "bad-utf8", "bad-base64", "dict-body", "empty-event", "no-method",
        "str-event", "none-event"])
def test_bad_requests_answer_400(proc: ModuleType, deployed: lf.Deployment,
                                 event: Any) -> None:
    resp = proc.handler(event, lf.FakeContext())
    assert resp["statusCode"] == 400, resp
    assert resp["headers"]["Content-Type"] == "application/json"
    assert isinstance(lf.answer(resp)["error"], str)


def test_bad_requests_do_not_load_artifacts(proc: ModuleType, deployed: lf.Deployment) -> None:
    assert proc.handler(lf.v1_event("{"), lf.FakeContext())["statusCode"] == 400
    assert proc._ARTIFACTS is None and proc._S3_CLIENT is None


# --------------------------------------------------------------------------- 405


@pytest.mark.parametrize("make_event", [lf.v1_event, lf.v2_event], ids=["v1", "v2"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "OPTIONS", "post"])
def test_other_methods_answer_405_with_allow(proc: ModuleType, deployed: lf.Deployment,
                                             make_event: Any, method: str) -> None:
    resp = proc.handler(make_event(lf.instances_body(rows(2)), method=method),
                        lf.FakeContext())
    assert resp["statusCode"] == 405
    assert resp["headers"]["Allow"] == "POST"
    assert resp["headers"]["Content-Type"] == "application/json"
    assert "error" in lf.answer(resp)


# --------------------------------------------------------------------------- 413


@pytest.mark.parametrize("b64", [False, True], ids=["plain", "base64"])
def test_body_over_the_limit_answers_413(proc: ModuleType, deployed: lf.Deployment,
                                         monkeypatch: pytest.MonkeyPatch, b64: bool) -> None:
    body = lf.instances_body(rows(3))
    monkeypatch.setenv("TDV_MAX_BODY_BYTES", str(len(body)))
    at_limit = proc.handler(lf.v1_event(body, b64=b64), lf.FakeContext())
    assert at_limit["statusCode"] == 200
    over = proc.handler(lf.v1_event(body + " ", b64=b64), lf.FakeContext())
    assert over["statusCode"] == 413
    assert "error" in lf.answer(over)


def test_default_limit_is_lambdas_6mb(proc: ModuleType, deployed: lf.Deployment) -> None:
    assert proc._max_body_bytes() == 6 * 1024 * 1024
    huge = '{"instances": [' + " " * (6 * 1024 * 1024) + "]}"
    assert proc.handler(lf.v2_event(huge), lf.FakeContext())["statusCode"] == 413


# --------------------------------------------------------------------------- 422


def test_prepro_key_error_answers_422(proc: ModuleType, deployed: lf.Deployment) -> None:
    resp = proc.handler(lf.v1_event(json.dumps({"rows": [[1, 2, 3, 4]]})), lf.FakeContext())
    assert resp["statusCode"] == 422
    body = lf.answer(resp)
    assert body["detail"].startswith("KeyError")
    assert "instances" in body["detail"]
    assert "Traceback" not in resp["body"]


def test_wrong_feature_count_answers_422(proc: ModuleType, deployed: lf.Deployment) -> None:
    resp = proc.handler(lf.v2_event(lf.instances_body([[1.0, 2.0, 3.0]])), lf.FakeContext())
    assert resp["statusCode"] == 422
    detail = lf.answer(resp)["detail"]
    assert detail.startswith("ValueError: ")
    assert "feature" in detail
    assert len(detail) <= 200


@pytest.mark.parametrize("payload", [
    {"instances": [[1, 2, 3, 4], [1, 2]]},
    {"instances": [["a", "b", "c", "d"]]},
    {"instances": 5},
    {"instances": []},
    [1, 2, 3],
    "just a string",
    {"instances": [[1, None, 3, 4]]},
    {"instances": [[10 ** 400, 1, 2, 3]]},
], ids=["ragged", "strings", "int", "empty", "list", "str", "null", "overflow"])
def test_other_input_errors_answer_422(proc: ModuleType, deployed: lf.Deployment,
                                       payload: Any) -> None:
    resp = proc.handler(lf.v1_event(json.dumps(payload)), lf.FakeContext())
    assert resp["statusCode"] == 422, resp
    assert len(lf.answer(resp)["detail"]) <= 200


def test_long_error_messages_are_truncated(proc: ModuleType) -> None:
    text = proc._describe(ValueError("x" * 10_000))
    assert text.startswith("ValueError: xxx") and text.endswith("...")
    assert len(text) == 200


# --------------------------------------------------------------------------- 500


def test_unexpected_error_answers_500_with_the_request_id(
        proc: ModuleType, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
        logs: pytest.LogCaptureFixture) -> None:
    lf.deploy(s3, bucket, monkeypatch, prepro=lf.prepro_bytes(lf.prepro_crashing))
    secret = "SECRET-payload-7f3a"
    resp = proc.handler(lf.v1_event(json.dumps({"instances": secret}), request_id="rq-500"),
                        lf.FakeContext())
    assert resp["statusCode"] == 500
    assert lf.answer(resp) == {"error": "internal error", "request_id": "rq-500"}
    assert secret not in all_log_text(logs)
    assert access_lines(logs)[-1]["error_type"] == "RuntimeError"


def digest_of(data: str) -> str:
    return lf.sha256(data.encode())


@pytest.mark.parametrize("which", ["model", "prepro"])
def test_digest_mismatch_answers_500_and_logs_why(
        proc: ModuleType, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
        logs: pytest.LogCaptureFixture, which: str) -> None:
    wrong = digest_of("something else")
    kwargs = {f"{which}_sha256": wrong}
    dep = lf.deploy(s3, bucket, monkeypatch, **kwargs)
    key = dep.model_key if which == "model" else dep.prepro_key
    actual = dep.env["TDV_MODEL_SHA256" if which == "model" else "TDV_PREPRO_SHA256"]
    assert actual == wrong  # the env claims the wrong digest

    resp = proc.handler(lf.v1_event(lf.instances_body(rows(2)), request_id="rq-sha"),
                        lf.FakeContext())
    assert resp["statusCode"] == 500
    assert lf.answer(resp) == {"error": "internal error", "request_id": "rq-sha"}
    real = lf.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    text = all_log_text(logs)
    assert key in text and wrong in text and real in text
    assert wrong not in resp["body"] and real not in resp["body"]
    assert proc._ARTIFACTS is None


def test_failed_load_is_not_cached(proc: ModuleType, s3: Any, bucket: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    model = lf.model_bytes()
    lf.deploy(s3, bucket, monkeypatch, model_sha256=digest_of("stale"))
    event = lf.v1_event(lf.instances_body(rows(3)))
    assert proc.handler(event, lf.FakeContext())["statusCode"] == 500
    monkeypatch.setenv("TDV_MODEL_SHA256", lf.sha256(model))
    assert proc.handler(event, lf.FakeContext())["statusCode"] == 200


def test_missing_object_answers_500(proc: ModuleType, deployed: lf.Deployment,
                                    logs: pytest.LogCaptureFixture) -> None:
    deployed.s3.delete_object(Bucket=deployed.bucket, Key=deployed.prepro_key)
    resp = proc.handler(lf.v1_event(lf.instances_body(rows(1))), lf.FakeContext())
    assert resp["statusCode"] == 500
    assert deployed.prepro_key in all_log_text(logs)


@pytest.mark.parametrize("var", ["TDV_BUCKET", "TDV_MODEL_SHA256", "TDV_DILL_VERSION"])
def test_missing_environment_answers_500(proc: ModuleType, deployed: lf.Deployment,
                                         monkeypatch: pytest.MonkeyPatch,
                                         logs: pytest.LogCaptureFixture, var: str) -> None:
    monkeypatch.delenv(var)
    resp = proc.handler(lf.v1_event(lf.instances_body(rows(1))), lf.FakeContext())
    assert resp["statusCode"] == 500
    assert var in all_log_text(logs)


def test_malformed_digest_and_limit_answer_500(proc: ModuleType, deployed: lf.Deployment,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    event = lf.v1_event(lf.instances_body(rows(1)))
    monkeypatch.setenv("TDV_MAX_BODY_BYTES", "lots")
    assert proc.handler(event, lf.FakeContext())["statusCode"] == 500
    monkeypatch.delenv("TDV_MAX_BODY_BYTES")
    monkeypatch.setenv("TDV_PREPRO_SHA256", "z" * 64)
    assert proc.handler(event, lf.FakeContext())["statusCode"] == 500
    monkeypatch.setenv("TDV_PREPRO_SHA256", deployed.env["TDV_PREPRO_SHA256"].upper())
    assert proc.handler(event, lf.FakeContext())["statusCode"] == 200


def running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@pytest.mark.parametrize(("var", "pickled"), [
    ("TDV_PYTHON_VERSION", "3.9"),
    ("TDV_PYTHON_VERSION", "2.7"),
    ("TDV_DILL_VERSION", "0.0.1"),
])
def test_version_mismatch_refuses_to_load(proc: ModuleType, deployed: lf.Deployment,
                                          monkeypatch: pytest.MonkeyPatch,
                                          logs: pytest.LogCaptureFixture, var: str,
                                          pickled: str) -> None:
    import dill

    monkeypatch.setenv(var, pickled)
    resp = proc.handler(lf.v1_event(lf.instances_body(rows(1)), request_id="rq-ver"),
                        lf.FakeContext())
    assert resp["statusCode"] == 500
    assert lf.answer(resp) == {"error": "internal error", "request_id": "rq-ver"}
    running = running_python() if var == "TDV_PYTHON_VERSION" else dill.__version__
    line = next(r.getMessage() for r in logs.records if "mismatch" in r.getMessage())
    assert pickled in line and running in line
    assert proc._ARTIFACTS is None


def test_patch_level_of_the_pickling_python_is_ignored(
        proc: ModuleType, deployed: lf.Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TDV_PYTHON_VERSION", f"{running_python()}.99")
    resp = proc.handler(lf.v1_event(lf.instances_body(rows(1))), lf.FakeContext())
    assert resp["statusCode"] == 200


# --------------------------------------------------------------------------- tampering


@pytest.mark.parametrize("which", ["model", "prepro"])
def test_tampered_artifact_is_never_unpickled(proc: ModuleType, s3: Any, bucket: str,
                                              monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              which: str) -> None:
    """An attacker swaps the object; the env still holds the genuine digest."""
    marker = tmp_path / f"{which}-was-unpickled"
    genuine = lf.model_bytes() if which == "model" else lf.prepro_bytes()
    evil = lf.marker_pickle(marker)
    lf.deploy(s3, bucket, monkeypatch, **{which: evil, f"{which}_sha256": lf.sha256(genuine)})
    resp = proc.handler(lf.v1_event(lf.instances_body(rows(2))), lf.FakeContext())
    assert resp["statusCode"] == 500
    assert not marker.exists()


@pytest.mark.parametrize("which", ["model", "prepro"])
def test_marker_pickle_does_leave_a_trace_when_its_digest_matches(
        proc: ModuleType, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path, logs: pytest.LogCaptureFixture, which: str) -> None:
    """Control for the tamper test: the probe works, so its absence above means something."""
    marker = tmp_path / f"{which}-was-unpickled"
    lf.deploy(s3, bucket, monkeypatch, **{which: lf.marker_pickle(marker)})
    resp = proc.handler(lf.v1_event(lf.instances_body(rows(2))), lf.FakeContext())
    assert marker.is_dir()
    assert resp["statusCode"] == 500  # what it unpickled to is no model / no function
    assert ("no predict method" if which == "model" else "not callable") in all_log_text(logs)


def test_version_mismatch_unpickles_nothing(proc: ModuleType, s3: Any, bucket: str,
                                            monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    lf.deploy(s3, bucket, monkeypatch, prepro=lf.marker_pickle(marker))
    monkeypatch.setenv("TDV_DILL_VERSION", "0.0.1")
    resp = proc.handler(lf.v1_event(lf.instances_body(rows(2))), lf.FakeContext())
    assert resp["statusCode"] == 500
    assert not marker.exists()


# --------------------------------------------------------------------------- logging


def test_one_structured_log_line_per_request_and_never_the_body(
        proc: ModuleType, deployed: lf.Deployment, monkeypatch: pytest.MonkeyPatch,
        logs: pytest.LogCaptureFixture) -> None:
    secret = "SECRET-body-content-91c2"
    monkeypatch.setenv("TDV_MAX_BODY_BYTES", "400")
    good = json.dumps({"instances": rows(2).tolist(), "note": secret})
    cases = [
        (lf.v1_event(good, request_id="r200"), 200),
        (lf.v2_event(base64.b64encode(good.encode()).decode(), request_id="r400"), 400),
        (lf.v1_event(good, method="GET", request_id="r405"), 405),
        (lf.v2_event(good + " " * 400, request_id="r413"), 413),
        (lf.v1_event(json.dumps({"instances": [[secret, 1, 2, 3]]}), request_id="r422"), 422),
        (lf.v1_event(json.dumps({"missing": secret}), request_id="r422b"), 422),
    ]
    for event, status in cases:
        before = len(access_lines(logs))
        resp = proc.handler(event, lf.FakeContext(aws_request_id=f"lambda-{status}"))
        assert resp["statusCode"] == status, resp
        new = access_lines(logs)[before:]
        assert len(new) == 1
        line = new[0]
        assert line["status"] == status
        assert line["request_id"] == event["requestContext"]["requestId"]
        assert line["lambda_request_id"] == f"lambda-{status}"
        assert line["method"] == ("GET" if status == 405 else "POST")
        assert isinstance(line["latency_ms"], float) and line["latency_ms"] >= 0
    assert secret not in all_log_text(logs)


def test_500_has_one_access_line_too(proc: ModuleType, deployed: lf.Deployment,
                                     monkeypatch: pytest.MonkeyPatch,
                                     logs: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TDV_MODEL_SHA256", digest_of("x"))
    proc.handler(lf.v1_event(lf.instances_body(rows(1)), request_id="r500"), lf.FakeContext())
    lines = access_lines(logs)
    assert [(x["status"], x["request_id"]) for x in lines] == [(500, "r500")]


def test_request_id_falls_back_to_the_lambda_context(proc: ModuleType,
                                                     deployed: lf.Deployment) -> None:
    event = lf.v1_event(lf.instances_body(rows(1)))
    del event["requestContext"]
    monkey_ctx = lf.FakeContext(aws_request_id="from-context")
    assert proc._request_id(event, monkey_ctx) == "from-context"
    assert proc._request_id(event, None) == "unknown"
