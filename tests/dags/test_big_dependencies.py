"""Dependencies past Lambda's 250 MB through the example DAG: scikit-learn, SciPy, pandas
and pyarrow from this environment become a bundle (Params ``dependencies``), the stack
attaches it, and the deployed function, run locally from S3 with the bundle layout,
answers like the model in process. The big zip is built once into the layer cache."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from testkit.example_dag import DAG_ID
from tests.conftest import AIRFLOW
from tests.dags.test_example_dag import _tail, boto3_lambda

BIG = {"from_installed": ["scikit-learn", "scipy", "pandas", "pyarrow"]}
PAYLOAD = {"instances": [{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                          "petal_width": 0.2},
                         {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2,
                          "petal_width": 2.3}]}


@pytest.mark.e2e
def test_dependencies_past_250_mb_deploy_as_a_bundle_and_answer(
        aws: Any, s3: Any, dag_bucket: str, airflow_env: dict[str, str],
        read_last_run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    done = subprocess.run([AIRFLOW, "dags", "test", DAG_ID, "-c",
                           json.dumps({"dependencies": BIG})],
                          env=airflow_env, capture_output=True, text=True, timeout=600,
                          check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, _tail(output)
    run = read_last_run(DAG_ID)
    assert run["state"] == "success", run["tis"]
    prepared = run["xcoms"]["prepare_deployment/return_value"]
    bundle = prepared["deps_bundle"]
    # The proof is about a bundle: the dependencies must not fit as a layer.
    assert bundle["unzipped_bytes"] > 262_144_000, bundle
    assert prepared["deps_packaging"] == "bundle" and prepared["s3_deps_layer_key"] is None
    assert "bundle (auto: code plus layers would be" in output
    config = boto3_lambda(aws).get_function_configuration(FunctionName="tdv-iris")
    assert config["Environment"]["Variables"]["TDV_DEPS_BUNDLE_KEY"] == bundle["key"]
    assert config["Environment"]["Variables"]["TDV_DEPS_BUNDLE_SHA256"] == bundle["sha256"]
    assert config["EphemeralStorage"] == {"Size": bundle["min_ephemeral_storage_mb"]}
    assert not config["Environment"]["Variables"].get("TDV_DEPS_LAYER_KEY")  # no layer

    from tdv_airflow.core.clients import AwsClients
    from tdv_airflow.local.process import invoke_once

    monkeypatch.setenv("TDV_BUNDLE_DIR", str(tmp_path / "lambda-tmp"))
    clients = AwsClients.from_auth(None, "us-east-1")
    outcome = invoke_once(clients, "tdv-iris", PAYLOAD, workdir=tmp_path / "work")
    assert outcome.error is None, outcome.error
    assert outcome.response["statusCode"] == 200, outcome.response
    sklearn_file = outcome.diagnostics["modules"]["sklearn"]
    assert sklearn_file.startswith(str(tmp_path / "lambda-tmp" / "tdv-bundle-")), sklearn_file

    import dill

    model_key = run["xcoms"]["train_model/model_s3_key"]
    raw = s3.get_object(Bucket=prepared["bucket"], Key=model_key)["Body"].read()
    if model_key.endswith(".joblib"):
        import joblib

        model = joblib.load(io.BytesIO(raw))
    else:
        model = dill.loads(raw)  # noqa: S301 - our own test artifact
    prepro = dill.loads(s3.get_object(Bucket=prepared["bucket"],  # noqa: S301
                                      Key=prepared["s3_prepro_fn_location"])["Body"].read())
    expected = [int(v) for v in model.predict(prepro(PAYLOAD))]
    assert json.loads(outcome.response["body"])["predictions"] == expected
