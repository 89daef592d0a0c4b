"""Nightly retrain-and-deploy: train an iris classifier, serve it as an HTTPS endpoint.

Every night at 02:00 UTC, and on demand with the Params below:

1. ``train_model`` trains a scikit-learn model on iris (no download) and stores it at
   ``{model_prefix}/{model_name}/{version}/model.pkl``; the version is the run's logical
   date (``YYYYMMDDTHHMMSS`` UTC), or its run id for a manual run without one. An existing
   key is not retrained: clearing an old run redeploys exactly that version's model.
2. ``prepare_deployment`` uploads the artifacts, content-addressed (a retry uploads
   nothing), among them :func:`prepro_fn`, pickled by value with its helper.
3. ``create_stack`` creates or updates the stack of the deployment
   ``{stack_prefix}-{model_name}``. Param ``stack_mode``: ``stable`` keeps one stack of
   that name, updated in place; ``per_version`` one stack ``...-{version}`` per version.
4. ``wait_for_stack`` waits for it; ``smoke_test`` posts ``smoke_payload`` to the endpoint
   with the auth it needs and checks the predictions.
5. ``per_version`` mode only: ``retire_old_versions`` deletes the deployment's stacks
   beyond the newest ``keep_versions``, never the stable stack.

``max_active_runs=1``: runs never interleave updates of the stable stack. Parsing this
file imports neither boto3 nor scikit-learn. Before the first run:

* The Airflow connection ``aws_default`` (type ``aws``): for AWS, credentials allowed to
  use S3, CloudFormation, IAM, Lambda, API Gateway and CloudWatch Logs, and the extra
  ``{"region_name": "eu-west-1"}``; for the emulator, ``tdv-local-aws env`` prints it
  (the smoke test then runs the deployed function locally).
* Create the bucket of Param ``bucket``: the DAG does not.
* Param ``dependencies`` defaults to copying the worker's scikit-learn and its
  requirements (right on the emulator or a Linux x86_64 worker); else use e.g.
  ``{"requirements": ["scikit-learn==1.6.1"]}`` (pip for Lambda).
* Waiting is Airflow configuration: ``AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE=true``
  defers to the triggerer, else ``AIRFLOW__TDV_AIRFLOW__SENSOR_MODE`` = ``poke`` or
  ``reschedule``; ``AIRFLOW__TDV_AIRFLOW__POLL_INTERVAL`` = seconds between polls.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowSkipException

from tdv_airflow.core.naming import model_version_from_context, stack_name_from
from tdv_airflow.operators import (
    CreateStackOperator,
    EndpointCheckOperator,
    PrepareDeploymentOperator,
    RetireVersionsOperator,
)
from tdv_airflow.sensors import StackStatusSensor

#: The request's feature names, in the order the model was trained on.
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")


def _features(record: Any) -> list[float]:
    """One request record (a dict by feature name, or a list) as the model's row."""
    if isinstance(record, dict):
        return [float(record[name]) for name in FEATURES]
    if len(record) != len(FEATURES):
        raise ValueError(f"expected {len(FEATURES)} values {FEATURES}, got {len(record)}")
    return [float(value) for value in record]


def prepro_fn(payload: Any) -> list[list[float]]:
    """Turn the request JSON into the model's input rows.

    Accepts ``{"instances": [...]}``, a list of records, or one record; a record is a
    dict by feature name or a list of the four values. Runs in Lambda, where this DAG
    file does not exist: it travels by value with :func:`_features` and ``FEATURES``.
    """
    records = payload.get("instances", payload) if isinstance(payload, dict) else payload
    if isinstance(records, dict) or (records and not isinstance(records[0], dict | list)):
        records = [records]
    return [_features(record) for record in records]


def per_version_only(context: Any) -> None:
    """Skip a task in ``stable`` mode (one stack: no version stack to retire)."""
    if context["params"]["stack_mode"] != "per_version":
        raise AirflowSkipException("stable mode: no version stack to retire")


SAMPLE = {"instances": [dict(zip(FEATURES, (5.1, 3.5, 1.4, 0.2), strict=True)),
                        dict(zip(FEATURES, (6.7, 3.0, 5.2, 2.3), strict=True))]}

with DAG(
    dag_id="retrain_and_deploy",
    description="Retrain the iris model every night and redeploy its HTTPS endpoint.",
    doc_md=__doc__,
    schedule="0 2 * * *",
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["tdv-airflow", "ml", "example"],
    default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
    render_template_as_native_obj=True,  # "{{ params.x }}" keeps the Param's JSON type
    params={
        "model_name": Param("iris", "Names the model's keys and stacks, e.g. iris.",
                            type="string", pattern="^[A-Za-z0-9-]{1,40}$"),
        "stack_prefix": Param("tdv", "Stacks are named {stack_prefix}-{model_name}, e.g. tdv.",
                              type="string", pattern="^[A-Za-z][A-Za-z0-9-]{0,40}$"),
        "bucket": Param("tdv-airflow-models", "An existing S3 bucket, e.g. my-models.",
                        type="string", minLength=3, maxLength=63),
        "model_prefix": Param("models", "Key prefix, e.g. models.", type="string", minLength=1),
        "stack_mode": Param("stable", "stable: one stack updated in place; per_version: "
                            "one stack per model version.", enum=["stable", "per_version"]),
        "keep_versions": Param(3, "Newest version stacks kept, e.g. 3.", type="integer", minimum=1),
        "on_exists": Param("update", "When the stack exists.", enum=["update", "skip", "fail"]),
        "endpoint_auth": Param("iam", "Who may call: SigV4-signed callers (iam), holders of "
                               "the API key, anyone (none).", enum=["iam", "api_key", "none"]),
        "template_path": Param(None, "A CloudFormation template on the worker, e.g. "
                               "/opt/stack.json (null: built-in).", type=["null", "string"]),
        "dependencies": Param({"from_installed": ["scikit-learn"]}, "The dependency layer, "
                              'e.g. {"requirements": ["scikit-learn==1.6.1"]}.', type="object"),
        "smoke_payload": Param(SAMPLE, 'The smoke request: {"instances": [{"sepal_length": '
                               '5.1, ...}, ...]}.', type="object"),
        "smoke_expected": Param([0, 2], "The predictions it must get, e.g. [0, 2] (null: "
                                "any).", type=["null", "array"], items={"type": "integer"}),
    },
) as dag:

    @task
    def train_model(**context: Any) -> dict[str, str]:
        """Train on iris unless this version's model exists; name its stack."""
        import pickle

        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        from tdv_airflow.core.store import object_exists
        from tdv_airflow.hooks import TdvDeploymentHook

        params = context["params"]
        s3, bucket = TdvDeploymentHook().get_client("s3"), params["bucket"]
        version = model_version_from_context(context)
        key = f"{params['model_prefix']}/{params['model_name']}/{version}/model.pkl"
        if object_exists(s3, bucket, key):
            print(f"model s3://{bucket}/{key} exists: version {version} is not retrained")
        else:
            features, labels = load_iris(return_X_y=True)
            model = LogisticRegression(max_iter=1000).fit(features, labels)
            s3.put_object(Bucket=bucket, Key=key, Body=pickle.dumps(model))
            print(f"model s3://{bucket}/{key}: accuracy {model.score(features, labels):.3f}")
        deployment = stack_name_from(params["stack_prefix"], params["model_name"])
        per_version = params["stack_mode"] == "per_version"
        name = stack_name_from(deployment, version) if per_version else deployment
        return {"model_s3_key": key, "deployment": deployment, "stack_name": name}

    trained = train_model()
    prepare = PrepareDeploymentOperator(
        task_id="prepare_deployment", bucket="{{ params.bucket }}",
        model_s3_key=trained["model_s3_key"], prepro_fn=prepro_fn,
        template_stack_local_path="{{ params.template_path }}",
        dependencies="{{ params.dependencies }}")
    create = CreateStackOperator(  # starts the stack; the sensor waits for it
        task_id="create_stack", prepare_env_response=prepare.output,
        stack_name=trained["stack_name"], deployment=trained["deployment"],
        on_exists="{{ params.on_exists }}", endpoint_auth="{{ params.endpoint_auth }}")
    wait = StackStatusSensor(  # a stack rolled back to what create asked for is success
        task_id="wait_for_stack", stack_name=trained["stack_name"], timeout=3600,
        expected_fingerprint=create.output["fingerprint"])
    smoke = EndpointCheckOperator(
        task_id="smoke_test", stack_name="{{ ti.xcom_pull('wait_for_stack')['stack_name'] }}",
        payload="{{ params.smoke_payload }}", expected_predictions="{{ params.smoke_expected }}")
    retire = RetireVersionsOperator(
        task_id="retire_old_versions", pre_execute=per_version_only,
        deployment=trained["deployment"], exclude=[trained["deployment"]],
        keep_versions="{{ params.keep_versions }}")
    create >> wait >> smoke >> retire
