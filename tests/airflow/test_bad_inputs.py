"""Bad input fails early and clearly: before anything is created, naming value and rule.

One table across the operators, the sensor, ``Deploy`` and the lifecycle helpers. Every
case runs against the emulator with a bucket and a model in place; afterwards the
emulator must hold no stack and no object beyond those (and, for cases that need a real
prepare response, the artifacts prepared on purpose before the bad call).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.exceptions import InvalidInputError
from testkit.aws_state import all_objects, live_stacks
from tests.conftest import TEST_BUCKET

MODEL_KEY = "models/iris/v1/model.pkl"
_GENERATOR = (i for i in range(3))


def good_prepro(payload: Any) -> Any:
    """A valid preprocessing function."""
    return payload


def _unpicklable(payload: Any) -> Any:
    return next(_GENERATOR)  # a generator: dill cannot pickle it


@dataclass
class Env:
    """What a case may use."""

    ctx: dict[str, Any]
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch
    clients: Any
    #: ``bucket/key`` of the inputs a case puts in place itself (e.g. a model elsewhere)
    inputs: set[str] = field(default_factory=set)

    def prepared(self) -> dict[str, Any]:
        """A real prepare response (its artifacts are created on purpose)."""
        from tdv_airflow.core import deployment

        return dict(deployment.prepare(self.clients, bucket=TEST_BUCKET,
                                       model_s3_key=MODEL_KEY,
                                       prepro_fn=good_prepro).response)


def _prepare(**kw: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        from tdv_airflow.operators import PrepareDeploymentOperator

        args = {"task_id": "prepare", "bucket": TEST_BUCKET, "model_s3_key": MODEL_KEY,
                "prepro_fn": good_prepro, **kw}
        return PrepareDeploymentOperator(**args).execute(env.ctx)
    return run


def _create(**kw: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        from tdv_airflow.operators import CreateStackOperator

        args = {"task_id": "create", "stack_name": "tdv-bad", **kw}
        if "prepare_env_response" not in args:
            args["prepare_env_response"] = env.prepared()
        return CreateStackOperator(**args).execute(env.ctx)
    return run


def _sensor(**kw: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        from tdv_airflow.sensors import StackStatusSensor

        return StackStatusSensor(**{"task_id": "wait", "stack_name": "tdv-bad",
                                    "poke_interval": 1, **kw}).execute(env.ctx)
    return run


def _delete(**kw: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        from tdv_airflow.operators import DeleteStackOperator

        return DeleteStackOperator(**{"task_id": "delete", "stack_name": "tdv-bad",
                                      "poll_interval": 0.1, **kw}).execute(env.ctx)
    return run


def _create_at_parse(**kw: Any) -> Callable[[Env], Any]:
    """A create task whose prepare response is only known when it runs: its literal
    arguments are checked when the DAG is parsed, before the prepare task can upload."""
    def run(env: Env) -> Any:
        from tdv_airflow.operators import CreateStackOperator

        return CreateStackOperator(**{"task_id": "create", "stack_name": "tdv-bad",
                                      "prepare_env_response": "{{ ti.xcom_pull('prepare') }}",
                                      **kw})
    return run


def _core_create(**kw: Any) -> Callable[[Env], Any]:
    """The core's create, as a task runs it with rendered (non-literal) arguments."""
    def run(env: Env) -> Any:
        from tdv_airflow.core import deployment

        return deployment.create_stack(env.clients, env.prepared(), "tdv-bad", **kw)
    return run


def _model_at(key: str, bucket: str = TEST_BUCKET, region: str = "us-east-1",
              **kw: Any) -> Callable[[Env], Any]:
    """Prepare with a model at ``key`` in ``bucket`` (created in ``region`` when missing)."""
    def run(env: Env) -> Any:
        import boto3

        s3 = boto3.Session(region_name=region).client(
            "s3", endpoint_url=env.clients.emulator_endpoint)
        if bucket != TEST_BUCKET:
            s3.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": region})
        s3.put_object(Bucket=bucket, Key=key, Body=b"model bytes")
        env.inputs.add(f"{bucket}/{key}")
        return _prepare(bucket=bucket, model_s3_key=key, **kw)(env)
    return run


def _deploy(**kw: Any) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        from tdv_airflow import Deploy

        args = {"bucket": TEST_BUCKET, "model_s3_key": MODEL_KEY, "prepro_fn": good_prepro,
                "region": "us-east-1", "stack_name": "tdv-bad", **kw}
        invoke_mode = args.pop("invoke_mode", 0)
        d = Deploy(**args)
        return d.deploy(None, invoke_mode=invoke_mode)
    return run


def _with_template(text: str) -> Callable[[Env], Any]:
    def run(env: Env) -> Any:
        path = env.tmp_path / "template.json"
        path.write_text(text)
        return _prepare(template_stack_local_path=str(path))(env)
    return run


def _without_runtime(env: Env) -> Any:
    env.monkeypatch.setattr("tdv_airflow.core.validation.LAMBDA_RUNTIMES", {})
    return _prepare()(env)


def _layer_over_limit(env: Env) -> Any:
    env.monkeypatch.setattr("tdv_airflow.core.layers.LAMBDA_UNZIPPED_LIMIT_BYTES", 10_000)
    return _prepare()(env)


def _no_credentials(env: Env) -> Any:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                 "AWS_PROFILE"):
        env.monkeypatch.delenv(name, raising=False)
    env.monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(env.tmp_path / "none"))
    env.monkeypatch.setenv("AWS_CONFIG_FILE", str(env.tmp_path / "none"))
    env.monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return _prepare(aws_conn_id=None, region_name="us-east-1")(env)


def _retire_keep_zero(env: Env) -> Any:
    from tdv_airflow.core.retention import retire

    return retire(env.clients.cloudformation, "tdv-iris", keep=0)


#: (id, the call, the exception, texts its message must hold: the value and the rule)
CASES: list[tuple[str, Callable[[Env], Any], type[Exception], tuple[str, ...]]] = [
    ("bucket-name", _prepare(bucket="Bad_Bucket!"), InvalidInputError,
     ("Bad_Bucket!", "bucket")),
    ("bucket-missing", _prepare(bucket="tdv-no-such-bucket"), InvalidInputError,
     ("tdv-no-such-bucket",)),
    ("model-key-missing", _prepare(model_s3_key="models/iris/v9/model.pkl"),
     InvalidInputError, ("models/iris/v9/model.pkl",)),
    ("model-key-empty", _prepare(model_s3_key=""), InvalidInputError, ("model_s3_key",)),
    ("prepro-not-callable", _prepare(prepro_fn=42), InvalidInputError,
     ("prepro_fn", "callable")),
    ("prepro-unpicklable", _prepare(prepro_fn=_unpicklable), InvalidInputError,
     ("prepro_fn",)),
    ("prepro-bad-import-path", _prepare(prepro_fn="no_such_pkg.features:prepare"),
     InvalidInputError, ("no_such_pkg",)),
    ("prepro-import-path-no-function", _prepare(prepro_fn="json:no_such_function"),
     InvalidInputError, ("no_such_function",)),
    ("template-missing", _prepare(template_stack_local_path="/nonexistent/t.json"),
     InvalidInputError, ("/nonexistent/t.json",)),
    ("template-broken-json", _with_template("{not json"), InvalidInputError,
     ("template",)),
    ("template-without-resources", _with_template(json.dumps({"Parameters": {}})),
     InvalidInputError, ("template",)),
    ("python-without-lambda-runtime", _without_runtime, InvalidInputError,
     ("Python 3.", "runtime")),
    ("layer-over-size-limit", _layer_over_limit, InvalidInputError, ("limit",)),
    ("too-many-layers", _prepare(extra_layer_arns=[
        f"arn:aws:lambda:us-east-1:123456789012:layer:l{i}:1" for i in range(6)]),
     InvalidInputError, ("layer",)),
    ("layer-arn-malformed", _prepare(extra_layer_arns=["not-an-arn"]), InvalidInputError,
     ("not-an-arn",)),
    ("region-unknown", _prepare(region_name="mars-1"), InvalidInputError,
     ("mars-1", "region")),
    ("missing-credentials", _no_credentials, InvalidInputError, ("credentials",)),
    ("unknown-connection-id", _prepare(aws_conn_id="no_such_conn"), InvalidInputError,
     ("no_such_conn", "connection")),
    ("stack-name-invalid", _create(stack_name="1bad_name"), InvalidInputError,
     ("1bad_name", "A-Za-z")),
    ("on-exists-invalid", _create(on_exists="replace"), InvalidInputError,
     ("replace", "update")),
    ("prepare-response-not-a-dict", _create(prepare_env_response="s3://x"),
     InvalidInputError, ("prepare_env_response",)),
    ("prepare-response-missing-keys", _create(prepare_env_response={"bucket": "b"}),
     InvalidInputError, ("prepare_env_response", "s3_lbd_key")),
    ("parameter-not-in-template", _create(stack_parameters={"NoSuchParam": "x"}),
     InvalidInputError, ("NoSuchParam",)),
    ("create-poll-interval-zero", _create(poll_interval=0), InvalidInputError,
     ("poll_interval", "0")),
    ("create-max-attempts-zero", _create(max_attempts=0), InvalidInputError,
     ("max_attempts", "0")),
    ("sensor-grace-negative", _sensor(not_found_grace_period=-1), InvalidInputError,
     ("not_found_grace_period", "-1")),
    ("sensor-unknown-connection-id", _sensor(aws_conn_id="nope_conn"), InvalidInputError,
     ("nope_conn", "connection")),
    ("delete-stack-name-invalid", _delete(stack_name="-x"), InvalidInputError, ("-x",)),
    ("delete-poll-interval-zero", _delete(poll_interval=0), InvalidInputError,
     ("poll_interval",)),
    ("deploy-invoke-mode", _deploy(invoke_mode=7), InvalidInputError, ("7", "invoke_mode")),
    ("deploy-stack-name-invalid", _deploy(stack_name="a_b"), InvalidInputError, ("a_b",)),
    ("deploy-endpoint-auth", _deploy(endpoint_auth="bogus"), InvalidInputError,
     ("bogus",)),
    ("deploy-auth-object", _deploy(auth_object="key:secret"), InvalidInputError,
     ("auth_object",)),
    ("retention-keep-zero", _retire_keep_zero, InvalidInputError, ("keep", "0")),
    ("bucket-in-another-region", _model_at(MODEL_KEY, "tdv-eu-bucket", "eu-west-1"),
     InvalidInputError, ("'tdv-eu-bucket'", "eu-west-1", "us-east-1")),
    ("model-key-not-a-tag-value", _model_at("models/iris (v2)/m.pkl"), InvalidInputError,
     ("'models/iris (v2)/m.pkl'", "model_s3_key", "tdv-airflow:model", "'(' ')'")),
    ("deploy-model-key-not-a-tag-value", _deploy(model_s3_key="models/a&b/m.pkl"),
     InvalidInputError, ("'models/a&b/m.pkl'", "'&'")),
    ("tag-value-empty", _create(tags={"team": ""}), InvalidInputError,
     ("'team'", "''", "1 to 256")),
    ("tag-value-empty-at-parse", _create_at_parse(tags={"team": ""}), InvalidInputError,
     ("'team'", "1 to 256")),
    ("tag-value-refused-characters", _create(tags={"release": "v2 (beta)!"}),
     InvalidInputError, ("'release'", "'v2 (beta)!'", "'(' ')' '!'")),
    ("tag-key-aws-prefix", _create(tags={"aws:team": "fraud"}), InvalidInputError,
     ("'aws:team'", "aws:")),
    ("core-tag-value-empty", _core_create(tags={"team": ""}), InvalidInputError,
     ("'team'", "1 to 256")),
    ("core-tag-value-refused-characters", _core_create(tags={"owner": "a,b"}),
     InvalidInputError, ("'owner'", "','")),
]


@pytest.mark.parametrize(("call", "error", "texts"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_input_fails_before_anything_is_created(
        call: Callable[[Env], Any], error: type[Exception], texts: tuple[str, ...],
        s3: Any, cfn: Any, bucket: str, task_context: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, aws: Any) -> None:
    from tdv_airflow.core.clients import AwsClients

    s3.put_object(Bucket=bucket, Key=MODEL_KEY, Body=b"model bytes")
    clients = AwsClients.from_auth(None, "us-east-1")
    env = Env(task_context(), tmp_path, monkeypatch, clients)
    baseline: set[str] = set()

    original_prepared = env.prepared

    def prepared_with_baseline() -> dict[str, Any]:
        response = original_prepared()
        baseline.update(all_objects(s3))
        return response

    env.prepared = prepared_with_baseline  # type: ignore[method-assign]
    with pytest.raises(error) as caught:
        call(env)
    message = str(caught.value)
    for text in texts:
        assert text in message, f"{text!r} missing from: {message}"
    assert live_stacks(cfn) == []
    assert all_objects(s3) <= ({f"{bucket}/{MODEL_KEY}"} | baseline | env.inputs), \
        all_objects(s3)
