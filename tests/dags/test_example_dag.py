"""The example DAG: it parses cleanly and cheaply, reads as a user's DAG, and runs end to
end on the emulator (``airflow dags test``) with the sensor in poke, reschedule and
deferrable mode, chosen by Airflow configuration."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testkit.example_dag import DAG_ID, WAIT_MODES, wait_settings
from testkit.held_stack import Releaser, deployment_template_with_hold
from tests.conftest import AIRFLOW, DAGS

DAG_FILE = DAGS / "retrain_and_deploy.py"
HEAVY = ("boto3", "botocore", "dill", "sklearn", "numpy", "moto", "aiobotocore")

_IMPORT_IN_FRESH_INTERPRETER = """
import importlib.util, json, sys
for name in ("tdv_airflow", "tdv_airflow.operators", "tdv_airflow.sensors", "tdv_airflow.hooks",
             "tdv_airflow.triggers", "tdv_airflow.links", "tdv_airflow.core.naming"):
    importlib.import_module(name)
spec = importlib.util.spec_from_file_location("retrain_and_deploy", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
heavy = sorted(m for m in sys.argv[2].split(",") if m in sys.modules)
print(json.dumps({"heavy": heavy, "tasks": sorted(module.dag.task_ids)}))
"""


def test_dagbag_loads_the_dag_without_errors_or_warnings() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    assert bag.captured_warnings == {}
    dag = bag.dags[DAG_ID]
    assert dag.catchup is False
    assert dag.schedule == "0 2 * * *"
    assert dag.max_active_runs == 1
    assert set(dag.task_ids) == {"train_model", "prepare_deployment", "create_stack",
                                 "wait_for_stack", "validate_candidate", "promote",
                                 "retire_old_versions"}
    # the gate: the candidate is validated before the alias moves to it
    assert dag.get_task("validate_candidate").upstream_task_ids >= {"wait_for_stack"}
    assert dag.get_task("promote").upstream_task_ids >= {"validate_candidate"}
    assert dag.params.get_param("strategy").schema["enum"] == ["all_at_once", "canary",
                                                               "linear"]
    assert {"model_name", "bucket", "on_exists", "smoke_payload"} <= set(dag.params)
    # the runtime options: the form refuses what Lambda refuses
    schema = {name: dag.params.get_param(name).schema for name in (
        "memory_size", "timeout", "ephemeral_storage", "provisioned_concurrency")}
    assert (schema["memory_size"]["minimum"], schema["memory_size"]["maximum"]) == (128, 10240)
    assert (schema["timeout"]["minimum"], schema["timeout"]["maximum"]) == (1, 900)
    assert schema["ephemeral_storage"]["minimum"] == 512
    assert schema["provisioned_concurrency"]["minimum"] == 0
    assert dag.params.get_param("architecture").schema["enum"] == ["x86_64", "arm64"]
    assert dag.params.get_param("front_door").schema["enum"] == ["rest", "http", "url"]
    assert dag.params.get_param("snap_start").schema["type"] == "boolean"
    dag.params.validate()
    # a user's DAG: Params described (arrays with an item type, so that the trigger form
    # sends numbers), no environment switch, the library's tag key, short
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.description, f"Param {name!r} has no description"
        types = param.schema.get("type", [])
        if "array" in ([types] if isinstance(types, str) else types):
            assert (param.schema.get("items") or {}).get("type"), f"array Param {name!r} untyped"
    source = DAG_FILE.read_text()
    assert "os.environ" not in source and "getenv" not in source
    assert "tdv-airflow:deployment" not in source
    # short: at most 200 lines, not counting the guides' snippet markers (# [START x])
    assert len([line for line in source.splitlines()
                if not line.lstrip().startswith("# [")]) <= 200


#: Bucket names and whether S3 accepts them (check_bucket_name holds S3's rule).
BUCKETS = ["tdv-airflow-models", "my.models-1", "abc", "a" * 63, "Bad_Bucket!", "ab",
           "a" * 64, "-models", "models-", "my..models", "192.168.1.1", "UPPER", "a b"]


def _refuses(param: Any, value: Any) -> bool:
    from airflow.sdk.definitions.param import ParamValidationError

    try:
        param.resolve(value)
    except ParamValidationError:
        return True
    return False


def test_the_trigger_form_refuses_what_the_tasks_would_fail_on() -> None:
    """The Params a user types are checked by the API before a run exists (issue 14)."""
    from airflow.dag_processing.dagbag import DagBag

    from tdv_airflow.core.validation import check_bucket_name
    from tdv_airflow.exceptions import InvalidInputError

    params = DagBag(dag_folder=str(DAGS)).dags[DAG_ID].params
    bucket = params.get_param("bucket")
    for name in BUCKETS:
        try:
            check_bucket_name(name)
            s3_refuses = False
        except InvalidInputError:
            s3_refuses = True
        assert _refuses(bucket, name) is s3_refuses, name
    assert _refuses(bucket, "Bad_Bucket!")
    assert "S3's rule: 3 to 63 lowercase letters, digits, dots and hyphens" in (
        bucket.description or "")
    for name, bad, good in [("model_name", "iris model", "iris-2"),
                            ("stack_prefix", "1tdv", "tdv-ml"),
                            ("model_prefix", "/models", "ml/models"),
                            ("model_prefix", "models/", "models"),
                            ("model_prefix", "ml//models", "ml")]:
        assert _refuses(params.get_param(name), bad), (name, bad)
        assert not _refuses(params.get_param(name), good), (name, good)
    # predictions are integers: the strings a "one string per line" box would send are refused
    expected = params.get_param("smoke_expected")
    assert _refuses(expected, ["0", "2"]) and not _refuses(expected, [0, 2])
    assert not _refuses(expected, None)
    # the dependencies box says its three forms and refuses a box without a source
    dependencies = params.get_param("dependencies")
    for form in ('{"from_installed": [...]}', '{"requirements": [...]}',
                 '{"requirements": [...], "packaging": "bundle"}'):
        assert form in (dependencies.description or ""), form
    for good in ({"from_installed": ["scikit-learn"]}, {"requirements": ["scikit-learn==1.6.1"]},
                 {"requirements": ["scikit-learn"], "packaging": "bundle"}):
        assert not _refuses(dependencies, good), good
    for bad in ({}, {"requirement": ["scikit-learn"]}, {"packaging": "bundle"}):
        assert _refuses(dependencies, bad), bad


def test_every_param_renders_as_a_field_that_keeps_its_type() -> None:
    """How Airflow 3.3's trigger form renders a Param (its FieldSelector, read from
    ``airflow/ui``): an array with ``examples`` or ``enum`` becomes a multi-select that
    sends strings, an array of strings (or of no item type) a box of one string per line;
    any other array, and an object, a JSON editor. A pattern must also be a full match."""
    from airflow.dag_processing.dagbag import DagBag

    params = DagBag(dag_folder=str(DAGS)).dags[DAG_ID].params
    for name in params:
        schema = params.get_param(name).schema
        types = schema.get("type", [])
        kinds = [t for t in ([types] if isinstance(types, str) else types) if t != "null"]
        assert len(kinds) <= 1 or "enum" in schema, f"{name}: one type besides null"
        if kinds == ["array"]:
            assert "examples" not in schema and "enum" not in schema, name
            assert schema["items"]["type"] != "string" or name.endswith("s"), name
        if "pattern" in schema:
            assert schema["pattern"].startswith("^") and schema["pattern"].endswith("$"), name


def test_the_rollback_dag_takes_a_stack_and_a_version_from_the_trigger_form() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.definitions.param import ParamValidationError

    dag = DagBag(dag_folder=str(DAGS)).dags["rollback_endpoint"]
    assert dag.schedule is None and set(dag.task_ids) == {"rollback"}
    assert set(dag.params) == {"stack_name", "to_version"}
    for name in dag.params:
        assert dag.params.get_param(name).description, name
    dag.params.validate()
    version = dag.params.get_param("to_version")
    assert version.resolve("3") == "3" and version.resolve("previous") == "previous"
    for bad in ("latest", "0", "-1", "$LATEST"):
        with pytest.raises(ParamValidationError):
            version.resolve(bad)


def test_parsing_the_dag_imports_no_heavy_module() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORT_IN_FRESH_INTERPRETER, str(DAG_FILE),
                           ",".join(HEAVY)], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tasks"], "the DAG file defined no tasks"
    assert result["heavy"] == [], f"parsing the DAG imported {result['heavy']}"


def test_prepro_fn_accepts_the_request_shapes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("retrain_and_deploy_for_test", DAG_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    expected = [[5.1, 3.5, 1.4, 0.2]]
    assert module.prepro_fn({"instances": [row]}) == expected
    assert module.prepro_fn([row]) == expected
    assert module.prepro_fn(row) == expected
    assert module.prepro_fn([5.1, 3.5, 1.4, 0.2]) == expected
    with pytest.raises(ValueError, match="expected 4 values"):
        module.prepro_fn([[1.0, 2.0]])


def _tail(text: str, lines: int = 80) -> str:
    return "\n".join(text.splitlines()[-lines:])


#: Runtime options one end-to-end run sets through the DAG run's conf.
OPTIONS = {"architecture": "x86_64", "memory_size": 1536, "timeout": 25,
           "ephemeral_storage": 1024}


def boto3_lambda(aws: Any) -> Any:
    """A Lambda client on the emulator."""
    import boto3

    from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY

    return boto3.client("lambda", endpoint_url=aws.endpoint_url, region_name="us-east-1",
                        aws_access_key_id=FAKE_ACCESS_KEY_ID,
                        aws_secret_access_key=FAKE_SECRET_ACCESS_KEY)


@pytest.mark.e2e
@pytest.mark.parametrize("mode", WAIT_MODES)
def test_dag_runs_end_to_end_on_the_emulator(
        mode: str, aws: Any, cfn: Any, dag_bucket: str, airflow_env: dict[str, str],
        read_last_run: Any, tmp_path: Path) -> None:
    template = deployment_template_with_hold(tmp_path / "held_template.json")
    releaser = Releaser(cfn, aws.endpoint_url, "tdv-iris", hold_for=4.0)
    releaser.start()
    conf: dict[str, Any] = {"template_path": str(template)}
    if mode == WAIT_MODES[0]:  # one run with runtime options (the next runs reset them)
        conf.update(OPTIONS)
    done = subprocess.run(
        [AIRFLOW, "dags", "test", DAG_ID, "-c", json.dumps(conf)],
        env={**airflow_env, **wait_settings(mode)}, capture_output=True, text=True,
        timeout=600, check=False)
    output = done.stdout + done.stderr
    releaser.join(timeout=10)
    assert releaser.error is None, f"{releaser.error!r}\n{_tail(output)}"
    assert done.returncode == 0, _tail(output)

    run = read_last_run(DAG_ID)
    assert run["state"] == "success", run["tis"]
    endpoint = run["xcoms"]["wait_for_stack/return_value"]
    assert endpoint["stack_name"] == "tdv-iris"
    assert endpoint["stack_status"] == "CREATE_COMPLETE"
    assert endpoint["api_name"] == "tdv-iris-api"
    assert endpoint["api_endpoint"].startswith("https://")
    assert endpoint["api_endpoint"].endswith(".execute-api.us-east-1.amazonaws.com/prod/predict")
    assert endpoint["outputs"]["FunctionName"] == "tdv-iris"
    validated = run["xcoms"]["validate_candidate/return_value"]
    assert validated["answers"] == [{"status": 200, "predictions": [0, 2]}]
    assert validated["version"] == "1"
    assert validated["candidate"]["model_s3_key"] == run["xcoms"]["train_model/model_s3_key"]
    promoted = run["xcoms"]["promote/return_value"]
    assert (promoted["version"], promoted["live"]["serving"][0]["share"]) == ("1", 1.0)
    assert promoted["live"]["serving"][0]["model_sha256"] == validated["candidate"][
        "model_sha256"]
    assert run["tis"]["retire_old_versions"]["state"] == "skipped"  # stable mode: one stack
    assert run["xcoms"]["wait_for_stack/_link_ApiEndpointLink"] == endpoint["api_endpoint"]
    assert run["xcoms"]["create_stack/_link_CloudFormationStackLink"].startswith(
        "https://us-east-1.console.aws.amazon.com/cloudformation/home?region=us-east-1#")
    if mode == WAIT_MODES[0]:
        lam = boto3_lambda(aws)
        config = lam.get_function_configuration(FunctionName="tdv-iris")
        assert (config["MemorySize"], config["Timeout"]) == (1536, 25)
        assert (config["Architectures"], config["EphemeralStorage"]) == (["x86_64"],
                                                                         {"Size": 1024})
        assert run["xcoms"]["prepare_deployment/return_value"]["architecture"] == "x86_64"
    version = run["xcoms"]["train_model/model_s3_key"].split("/")[2]
    assert len(version) == 15 and version[8] == "T", version

    waited = len(re.findall(r"stack '?tdv-iris'? is CREATE_IN_PROGRESS", output))
    if mode == "poke":
        assert waited >= 2, "the sensor did not poke while the stack was held"
    elif mode == "reschedule":
        assert run["tis"]["wait_for_stack"]["reschedules"] >= 1, run["tis"]
    else:
        assert "[DAG TEST] running trigger in line" in output
