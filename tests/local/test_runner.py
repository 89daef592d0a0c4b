"""A stack deployed to the emulator runs locally from the code and layers in S3.

The deployment carries a dependency layer built ``from_installed`` (scikit-learn and
friends from this environment); the function process must import all of it from the
layout fetched from S3, never from this environment or from ``lambda_src/``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.layers import Dependencies
from tdv_airflow.core.resources import default_lambda_source_path
from tdv_airflow.exceptions import LocalRunError
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.local.layout import lay_out, runtime_modules
from tdv_airflow.local.process import LocalFunction, invoke_deployed
from testkit.deployed import deploy_stack, serving, serving_cli

BUCKET = "tdv-local-run-bucket"
MODEL_KEY = "models/iris/rf/model.pkl"
STACK = "tdv-local-run"
REGION = "us-east-1"
DEPS = ("sklearn", "numpy", "scipy", "joblib", "threadpoolctl")


def iris_features(payload: dict[str, Any]) -> list[list[float]]:
    """The request's rows as floats (a ValueError for anything else: a 422)."""
    return [[float(v) for v in row] for row in payload["features"]]


@dataclass
class Deployed:
    clients: AwsClients
    endpoint_url: str
    model: Any
    rows: list[list[float]]
    response: dict[str, Any]
    workdir: Path
    s3: Any


@pytest.fixture(scope="module")
def deployed(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """One stack for the whole module (the tests here never reset the emulator)."""
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    local_aws.reset()
    X, y = load_iris(return_X_y=True)
    model = RandomForestClassifier(n_estimators=25, random_state=0).fit(X, y)
    deps = Dependencies(from_installed=DEPS, compresslevel=1,
                        cache_dir=str(tmp_path_factory.mktemp("layer-cache")))
    # A public endpoint: these tests are about running the function, not about the
    # endpoint's authentication (tests/endpoint/test_auth_modes.py).
    stack = deploy_stack(local_aws.endpoint_url, BUCKET, STACK, endpoint_auth="none",
                         model=pickle.dumps(model), model_key=MODEL_KEY,
                         prepro_fn=iris_features, dependencies=deps)
    assert stack.endpoint["stack_status"] == "CREATE_COMPLETE"
    promote_if_aliased(stack.clients, stack.outputs)
    rows = [list(map(float, r)) for r in X[::10]]
    return Deployed(stack.clients, local_aws.endpoint_url, model, rows, stack.prepared,
                    tmp_path_factory.mktemp("local-run"), stack.s3)


def promote_if_aliased(clients: AwsClients, outputs: dict[str, str]) -> None:
    """A stack whose API invokes an alias (a ``LiveAlias`` output) answers only once a
    version is live: unless the deployment did, publish ``$LATEST`` and point the alias at
    it, as a promotion does."""
    alias, name = outputs.get("LiveAlias"), outputs["FunctionName"]
    if not alias:
        return
    lam = clients.lambda_
    try:
        lam.get_alias(FunctionName=name, Name=alias)  # already promoted by the deployment
    except lam.exceptions.ResourceNotFoundException:
        version = lam.publish_version(FunctionName=name)["Version"]
        lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=version)


def predictions(response: dict[str, Any]) -> list[Any]:
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])["predictions"]  # type: ignore[no-any-return]


def test_invoke_deployed_predicts_like_the_model_in_process(deployed: Deployed) -> None:
    response = invoke_deployed(deployed.clients, STACK, {"features": deployed.rows},
                               workdir=deployed.workdir)
    assert predictions(response) == deployed.model.predict(deployed.rows).tolist()
    assert response["headers"]["Content-Type"] == "application/json"


def test_the_function_runs_from_the_layout_fetched_from_s3(deployed: Deployed) -> None:
    with LocalFunction(deployed.clients, STACK, workdir=deployed.workdir) as function:
        layout = function.layout
        assert layout is not None
        first = function.invoke_event(function.event_for({"features": deployed.rows[:2]}))
        second = function.invoke_event(function.event_for({"features": deployed.rows[2:4]}))
        pid = function.pid
    assert predictions(first.response) == deployed.model.predict(deployed.rows[:2]).tolist()
    assert predictions(second.response) == deployed.model.predict(deployed.rows[2:4]).tolist()
    assert first.cold and not second.cold and pid is not None
    diag = second.diagnostics
    assert diag["pid"] == first.diagnostics["pid"] == pid  # warm: the same process

    # The handler is the code zip from S3, laid out under the code's digest...
    code_sha = deployed.response["sha256"]["lambda_code"]
    assert layout.task_dir == deployed.workdir / "code" / code_sha
    handler = Path(diag["handler_file"])
    assert handler == layout.task_dir / "lbd_request_processor.py"
    assert handler.parent != default_lambda_source_path().parent
    code_zip = deployed.s3.get_object(Bucket=BUCKET, Key=deployed.response["s3_lbd_key"])
    with zipfile.ZipFile(io.BytesIO(code_zip["Body"].read())) as zf:
        assert zf.read("lbd_request_processor.py") == handler.read_bytes()
    assert diag["cwd"] == str(layout.task_dir) and diag["sys_path"][0] == str(layout.task_dir)

    # ... the libraries come from the layers in S3, in order, and nothing from here.
    recorded = json.loads((layout.opt_dir / ".tdv-layers.json").read_text())
    assert [r["sha256"] for r in recorded] == [deployed.response["sha256"]["layer"],
                                               deployed.response["sha256"]["deps_layer"]]
    for name in ("dill", "sklearn", "numpy", "scipy", "joblib"):
        assert diag["modules"][name].startswith(str(layout.opt_dir) + "/python/"), name
    assert diag["modules"]["boto3"].startswith(str(layout.runtime_dir))
    assert diag["tdv_airflow_importable"] is False
    assert not [p for p in diag["sys_path"] if "site-packages" in p
                and not p.startswith(str(layout.opt_dir))]
    assert not [p for p in diag["sys_path"] if p.startswith(str(Path.cwd()))]


def test_a_second_layout_downloads_nothing(deployed: Deployed) -> None:
    function = LocalFunction(deployed.clients, STACK, workdir=deployed.workdir)
    function.prepare()
    assert function.function is not None
    again = lay_out(deployed.clients, function.function, deployed.workdir)
    assert again.downloaded == ()
    assert again.task_dir.is_dir() and again.opt_dir.is_dir()


def test_bad_payloads_get_the_handlers_client_errors(deployed: Deployed) -> None:
    with LocalFunction(deployed.clients, STACK, workdir=deployed.workdir) as function:
        not_json = function.invoke("{not json")
        wrong_shape = function.invoke({"features": "abc"})
        wrong_width = function.invoke({"features": [[1.0, 2.0]]})
        still_fine = function.invoke({"features": deployed.rows[:1]})
    assert not_json["statusCode"] == 400
    assert "JSON" in json.loads(not_json["body"])["error"]
    assert wrong_shape["statusCode"] == 422
    assert json.loads(wrong_shape["body"])["detail"].startswith("ValueError")
    assert wrong_width["statusCode"] == 422
    assert predictions(still_fine) == deployed.model.predict(deployed.rows[:1]).tolist()


def post(url: str, body: bytes, method: str = "POST") -> tuple[int, dict[str, Any], Any]:
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_serve_answers_real_http_requests(deployed: Deployed) -> None:
    with serving(deployed.clients, STACK, deployed.workdir) as server:
        base = server.base_url
        body = json.dumps({"features": deployed.rows}).encode()
        status, headers, answer = post(f"{base}/predict", body)
        pid = server.function.pid
        status2, _, answer2 = post(f"{base}/prod/predict", body)  # the stage path too
        bad_status, _, bad = post(f"{base}/predict", b"[1, 2")
        missing_status, _, missing = post(f"{base}/nope", body)
        get_status, _, _ = post(f"{base}/predict", b"", method="GET")
    expected = deployed.model.predict(deployed.rows).tolist()
    assert (status, answer["predictions"]) == (200, expected)
    assert headers["Content-Type"] == "application/json" and headers["x-amzn-RequestId"]
    assert (status2, answer2["predictions"]) == (200, expected)
    assert server.function.pid is None and pid is not None  # one warm process served them
    assert bad_status == 400 and "JSON" in bad["error"]
    assert (missing_status, missing) == (403, {"message": "Missing Authentication Token"})
    assert get_status == 403


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tdv_airflow.local.cli", *args]


def test_cli_invoke_prints_the_response(deployed: Deployed) -> None:
    payload = json.dumps({"features": deployed.rows[:3]})
    done = subprocess.run(
        cli("invoke", "--stack", STACK, "--payload", payload, "--region", REGION,
            "--endpoint-url", deployed.endpoint_url, "--workdir", str(deployed.workdir)),
        capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert predictions(response) == deployed.model.predict(deployed.rows[:3]).tolist()
    bad = subprocess.run(
        cli("invoke", "--stack", STACK, "--payload", "{", "--region", REGION,
            "--endpoint-url", deployed.endpoint_url, "--workdir", str(deployed.workdir)),
        capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and json.loads(bad.stdout)["statusCode"] == 400
    missing = subprocess.run(
        cli("invoke", "--stack", "no-such-stack", "--payload", "{}", "--region", REGION,
            "--endpoint-url", deployed.endpoint_url, "--workdir", str(deployed.workdir)),
        capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_cli_serve_answers_curl_style_requests(deployed: Deployed) -> None:
    with serving_cli(STACK, deployed.endpoint_url, deployed.workdir) as served:
        status, _, answer = post(served.url,
                                 json.dumps({"features": deployed.rows[:2]}).encode())
    assert status == 200
    assert answer["predictions"] == deployed.model.predict(deployed.rows[:2]).tolist()


def test_tampered_code_is_refused(deployed: Deployed, tmp_path: Path) -> None:
    key = deployed.response["s3_lbd_key"]
    original = deployed.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("lbd_request_processor.py", "def handler(event, context):\n    return 1\n")
    deployed.s3.put_object(Bucket=BUCKET, Key=key, Body=buf.getvalue())
    try:
        with pytest.raises(LocalRunError, match="SHA-256") as info:
            LocalFunction(deployed.clients, STACK, workdir=tmp_path).prepare()
        assert hashlib.sha256(buf.getvalue()).hexdigest() in str(info.value)
    finally:
        deployed.s3.put_object(Bucket=BUCKET, Key=key, Body=original)
    assert not (tmp_path / "code").exists() or not any((tmp_path / "code").iterdir())


def test_extra_layers_the_emulator_cannot_serve_fail_clearly(deployed: Deployed,
                                                            tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("python/extra_mod.py", "X = 1\n")
    layer = deployed.clients.lambda_.publish_layer_version(
        LayerName="tdv-extra", Content={"ZipFile": buf.getvalue()})
    extra = deploy_stack(deployed.endpoint_url, BUCKET, "tdv-local-run-extra",
                         prepro_fn=iris_features, extra_layer_arns=[layer["LayerVersionArn"]])
    promote_if_aliased(extra.clients, extra.outputs)
    with pytest.raises(LocalRunError, match="cannot be downloaded"):
        LocalFunction(deployed.clients, "tdv-local-run-extra", workdir=tmp_path).prepare()


def test_the_runtime_stand_in_holds_the_runtimes_own_modules(deployed: Deployed) -> None:
    """boto3 and its dependencies (the core's list of what the Lambda runtime provides),
    by module name: ``python-dateutil`` is ``dateutil``."""
    modules = runtime_modules()
    assert {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six",
            "urllib3"} <= set(modules)
    function = LocalFunction(deployed.clients, STACK, workdir=deployed.workdir)
    layout = function.prepare()
    linked = {p.name.removesuffix(".py") for p in layout.runtime_dir.iterdir()
              if p.name != "__pycache__"}  # six.py's, written by the function's process
    assert linked == set(modules)
