"""Nightly retrain-and-deploy: train an iris classifier, serve it as an HTTPS endpoint.

Every night at 02:00 UTC, and on demand with the Params below:

1. ``train_model`` trains on iris and stores ``{model_prefix}/{model_name}/{version}/
   model.pkl``, version = the logical date (``YYYYMMDDTHHMMSS``) or the run id. An existing
   key is not retrained: clearing an old run serves that version's model again.
2. ``prepare_deployment`` uploads content-addressed artifacts, :func:`prepro_fn` by value.
3. ``create_stack`` updates the stack ``{stack_prefix}-{model_name}`` (``stable``) or
   creates ``...-{version}`` (``per_version``); ``wait_for_stack`` waits. Its function is
   the candidate, with no traffic yet: API Gateway invokes the ``live`` alias.
4. ``validate_candidate`` publishes it as an immutable version and posts ``smoke_payload``
   to that version itself; wrong predictions fail the run with the live model untouched.
5. ``promote`` shifts the alias to it by ``strategy`` (``canary``/``linear`` bake each
   step for ``bake_seconds`` watching the stack's alarms, rolling back on one).
6. Retention: the newest ``keep_versions`` Lambda versions (never the live or previous),
   and in ``per_version`` mode stacks (``retire_old_versions``; never the stable one).

``max_active_runs=1``: runs never interleave. Parsing imports neither boto3 nor sklearn.
First set up the connection ``aws_default`` and the bucket (README, "The example DAG").
``rollback_endpoint`` moves the live alias back to an earlier version in one change.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowSkipException

from tdv_airflow.core.naming import model_version_from_context, stack_name_from
from tdv_airflow.notifications import deployment_notifiers
from tdv_airflow.operators import (
    CreateStackOperator,
    PrepareDeploymentOperator,
    PromoteOperator,
    RetireVersionsOperator,
    ValidateCandidateOperator,
)
from tdv_airflow.sensors import StackStatusSensor

NOTIFY = deployment_notifiers()  # mail via connection smtp_default to its extra "notify_to"
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


#: The function's runtime options, each from the Param of its name (FunctionOptions).
OPTIONS = {name: "{{ params." + name + " }}" for name in (
    "architecture", "memory_size", "timeout", "ephemeral_storage", "provisioned_concurrency",
    "snap_start", "front_door")}
SAMPLE = {"instances": [dict(zip(FEATURES, (5.1, 3.5, 1.4, 0.2), strict=True)),
                        dict(zip(FEATURES, (6.7, 3.0, 5.2, 2.3), strict=True))]}
#: S3's bucket name rule (tdv_airflow.core.validation.check_bucket_name), for the form.
BUCKET_RULE = r"^(?!.*\.\.)(?!\d+\.\d+\.\d+\.\d+$)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
ONE_SOURCE = [{"required": [k]} for k in ("requirements", "from_installed", "zip_path")]

with DAG(
    dag_id="retrain_and_deploy",
    description="Retrain the iris model every night and redeploy its HTTPS endpoint.",
    doc_md=__doc__,
    schedule="0 2 * * *", start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False,
    max_active_runs=1, tags=["tdv-airflow", "ml", "example"],
    default_args={"retries": 1},  # retry delay: [core] default_task_retry_delay
    render_template_as_native_obj=True,  # "{{ params.x }}" keeps the Param's JSON type
    params={  # the API refuses a run whose Params break these rules: nothing runs
        "model_name": Param("iris", "Names its keys and stacks: 1 to 40 letters, digits or "
                            "hyphens.", type="string", pattern="^[A-Za-z0-9-]{1,40}$"),
        "stack_prefix": Param("tdv", "Stacks are {stack_prefix}-{model_name}: a letter, then up "
                              "to 40 letters, digits or hyphens.", type="string",
                              pattern="^[A-Za-z][A-Za-z0-9-]{0,40}$"),
        "bucket": Param("tdv-airflow-models", "An existing S3 bucket. S3's rule: 3 to 63 lowercase "
                        "letters, digits, dots and hyphens, starting and ending with a letter or "
                        "digit (no '..', no IP address).", type="string", pattern=BUCKET_RULE),
        "model_prefix": Param("models", "Key prefix: segments joined by single '/', none at either "
                              "end, e.g. models.", type="string", pattern="^[^/]+(/[^/]+)*$"),
        "stack_mode": Param("stable", "stable: one stack updated in place; per_version: "
                            "one stack per model version.", enum=["stable", "per_version"]),
        "keep_versions": Param(3, "Newest versions kept (Lambda versions; stacks in per_version), "
                               "e.g. 3.", type="integer", minimum=1),
        "on_exists": Param("update", "When the stack exists.", enum=["update", "skip", "fail"]),
        "endpoint_auth": Param("iam", "Who may call: SigV4-signed callers (iam), holders of "
                               "the API key, anyone (none).", enum=["iam", "api_key", "none"]),
        "template_path": Param(None, "A CloudFormation template on the worker, e.g. "
                               "/opt/stack.json (empty: built-in).", type=["null", "string"]),
        "dependencies": Param({"from_installed": ["scikit-learn"]}, 'The dependency layer: {"'
                              'from_installed": [...]}, {"requirements": [...]} or {"requirements":'
                              ' [...], "packaging": "bundle"}.', type="object", anyOf=ONE_SOURCE),
        "smoke_payload": Param(SAMPLE, 'The smoke request: {"instances": [{"sepal_length": 5.1, '
                               '"sepal_width": 3.5, ...}, ...]}.', type="object", minProperties=1),
        "smoke_expected": Param([0, 2], "Predictions it must get: JSON integers, e.g. [0, 2] ("
                                "empty: any).", type=["null", "array"], items={"type": "integer"}),
        "strategy": Param("all_at_once", "How the validated version takes the traffic.",
                          enum=["all_at_once", "canary", "linear"]),
        "canary_weight": Param(0.1, "canary: its share, e.g. 0.1.", type="number",
                               exclusiveMinimum=0, exclusiveMaximum=1),
        "bake_seconds": Param(600, "Alarms watched per step, e.g. 600.", type="integer",
                              minimum=1),
        "architecture": Param("x86_64", "CPU: x86_64, or arm64 (Graviton, about 20 % cheaper; "
                              "dependencies are built for it).", enum=["x86_64", "arm64"]),
        "memory_size": Param(1024, "Function memory in MB, 128 to 10240 (CPU grows with it).",
                             type="integer", minimum=128, maximum=10240),
        "timeout": Param(28, "Function timeout in seconds, below the front door's: rest at most "
                         "28, http 29, url 900.", type="integer", minimum=1, maximum=900),
        "ephemeral_storage": Param(None, "Ephemeral storage (/tmp) in MB, 512 to 10240 (empty: "
                                   "512, or what a bundle needs).", type=["null", "integer"],
                                   minimum=512, maximum=10240),
        "provisioned_concurrency": Param(0, "Environments kept initialised on the live alias, "
                                         "e.g. 2 (0: none).", type="integer", minimum=0),
        "snap_start": Param(False, "SnapStart (Python 3.12+ workers; not with provisioned "
                            "concurrency nor /tmp over 512 MB).", type="boolean"),
        "front_door": Param("rest", "rest (REST API), http (HTTP API, cheaper) or url (function "
                            "URL, free); API keys only on rest.", enum=["rest", "http", "url"]),
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
    # [START howto_operator_prepare_deployment]
    prepare = PrepareDeploymentOperator(
        task_id="prepare_deployment", bucket="{{ params.bucket }}",
        model_s3_key=trained["model_s3_key"], prepro_fn=prepro_fn,
        template_stack_local_path="{{ params.template_path }}",
        dependencies="{{ params.dependencies }}", function_options=OPTIONS)
    # [END howto_operator_prepare_deployment]
    # [START howto_operator_create_stack]
    create = CreateStackOperator(  # starts the stack; the sensor waits for it
        task_id="create_stack", prepare_env_response=prepare.output,
        stack_name=trained["stack_name"], deployment=trained["deployment"],
        on_exists="{{ params.on_exists }}", endpoint_auth="{{ params.endpoint_auth }}",
        function_options=OPTIONS)
    # [END howto_operator_create_stack]
    # [START howto_sensor_stack_status]
    wait = StackStatusSensor(  # a stack rolled back to what create asked for is success
        task_id="wait_for_stack", stack_name=trained["stack_name"], timeout=3600,
        expected_fingerprint=create.output["fingerprint"])
    # [END howto_sensor_stack_status]
    # [START howto_operator_validate_candidate]
    validate = ValidateCandidateOperator(  # the candidate version itself, before traffic
        task_id="validate_candidate", stack_name=trained["stack_name"],
        identity=create.output["identity"], on_failure_callback=NOTIFY.rejected, requests=[{
            "payload": "{{ params.smoke_payload }}",
            "expected_predictions": "{{ params.smoke_expected }}"}])
    # [END howto_operator_validate_candidate]
    # [START howto_operator_promote]
    promote = PromoteOperator(
        task_id="promote", stack_name=trained["stack_name"], version=validate.output["version"],
        strategy="{{ params.strategy }}", canary_weight="{{ params.canary_weight }}",
        bake_seconds="{{ params.bake_seconds }}", keep_versions="{{ params.keep_versions }}",
        on_success_callback=NOTIFY.live, on_failure_callback=NOTIFY.rolled_back)
    # [END howto_operator_promote]
    # [START howto_operator_retire_versions]
    retire = RetireVersionsOperator(
        task_id="retire_old_versions", pre_execute=per_version_only,
        deployment=trained["deployment"], exclude=[trained["deployment"]],
        keep_versions="{{ params.keep_versions }}")
    # [END howto_operator_retire_versions]
    create >> wait >> validate >> promote >> retire
