"""Nightly retrain-and-deploy: train an iris classifier, serve it as an HTTPS endpoint.

Every night at 02:00 UTC (and on demand from the UI, with the Params below):

1. ``train_model`` trains a scikit-learn model on the iris data set that scikit-learn
   ships (no download) and writes it to S3 under a versioned key,
   ``{model_prefix}/{model_name}/{version}/model.pkl``. The version is the run's logical
   date (``YYYYMMDDTHHMMSS`` UTC, like ``{{ ts_nodash }}``) or, for a manual run
   without a logical date, its run id (see :func:`tdv_airflow.core.naming.model_version`),
   so a backfilled or retried run always gets its own version. When that key already
   exists, the model is **not** retrained: the stored key is returned, so clearing an
   old run redeploys exactly that version's model (and content-addressed artifacts).
2. ``prepare_deployment`` uploads the artifacts (request processor, dill layer, the
   model's dependency layer pinned to the scikit-learn that trained it, the
   preprocessing function :func:`prepro_fn` pickled *by value* with its helper, and the
   CloudFormation template), content-addressed: a retry uploads nothing.
3. ``create_stack`` creates or updates the stack. The Param ``stack_mode`` picks how:
   ``stable`` (default; ``TDV_STACK_MODE`` changes it for the whole DAG) keeps one stack
   ``{stack_prefix}-{model_name}`` whose function each night's model replaces in place;
   ``per_version`` creates an immutable stack ``{stack_prefix}-{model_name}-{version}``
   per model version. Both are tagged ``tdv-airflow:deployment =
   {stack_prefix}-{model_name}``.
4. ``wait_for_stack`` waits for it (deferrable by default) and returns the endpoint.
5. ``smoke_test`` posts a sample and checks the predictions.
6. ``retire_old_versions`` (``per_version`` mode only; a no-op in ``stable`` mode) deletes
   the deployment's per-version stacks beyond the newest ``keep_versions``.

Runs never interleave updates of the stable stack: ``max_active_runs=1`` serialises the
runs, and ``create_stack`` also waits for a stack still in progress before updating it.

Pointing it at a real AWS account
---------------------------------
* Create an Airflow connection of type ``aws`` (id ``aws_default``, or set
  ``TDV_AWS_CONN_ID``) with credentials or a role allowed to use S3, CloudFormation,
  IAM (the stack creates the function's role: ``CAPABILITY_IAM``), Lambda, API Gateway
  and CloudWatch Logs, and the extra ``{"region_name": "eu-west-1"}``. Do **not** set
  ``endpoint_url``: without it the connection talks to AWS.
* Create the bucket (the DAG only creates a missing bucket on a local emulator) and
  set the ``bucket`` Param, or ``TDV_BUCKET`` for scheduled runs.
* The dependency layer is built with pip for Lambda's platform from
  ``scikit-learn==<the worker's version>``; on a worker without access to PyPI, give
  the ``dependencies`` Param (e.g. ``{"zip_path": "/opt/layers/sklearn.zip"}``) or
  existing layers through ``extra_layer_arns``.
* The smoke test then posts to the real ``api_endpoint``, signed with SigV4 by the
  connection's credentials (Param ``endpoint_auth`` = ``iam``, the default; the identity
  needs ``execute-api:Invoke``), with the stack's API key (``api_key``), or as is
  (``none``, a public endpoint).

On the local emulator (``tdv-local-aws start``; ``tdv-local-aws env`` prints the
variables, including ``AIRFLOW_CONN_AWS_DEFAULT`` with an ``endpoint_url`` on
127.0.0.1), the bucket is created when missing, the dependency layer is copied from the
worker's own scikit-learn and its installed requirements, and the smoke test runs the
deployed function locally (:func:`tdv_airflow.local.run.invoke_deployed`), since the
emulator runs no Lambda.

Settings read when the file is parsed (the scheduler must know a sensor's mode):
``TDV_SENSOR_MODE`` = ``deferrable`` (default), ``poke`` or ``reschedule``;
``TDV_POKE_INTERVAL`` = seconds between stack polls (default 30); ``TDV_AWS_CONN_ID``;
``TDV_BUCKET``.

Parsing this file imports neither boto3 nor scikit-learn: they are imported inside the
tasks.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, task

from tdv_airflow.core.naming import model_version_from_context, stack_name_from
from tdv_airflow.operators import CreateStackOperator, PrepareDeploymentOperator
from tdv_airflow.sensors import StackStatusSensor

SENSOR_MODE = os.environ.get("TDV_SENSOR_MODE", "deferrable")
POKE_INTERVAL = float(os.environ.get("TDV_POKE_INTERVAL", "30"))
AWS_CONN_ID = os.environ.get("TDV_AWS_CONN_ID", "aws_default")
DEFAULT_BUCKET = os.environ.get("TDV_BUCKET", "tdv-airflow-models")
STACK_MODE = os.environ.get("TDV_STACK_MODE", "stable")
if SENSOR_MODE not in ("deferrable", "poke", "reschedule"):
    raise ValueError(f"TDV_SENSOR_MODE must be deferrable, poke or reschedule, "
                     f"got {SENSOR_MODE!r}")

#: The request's feature names, in the order the model was trained on.
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
#: The distribution whose installed files (and dependencies') make the emulator's layer.
MODEL_LIBRARY = "scikit-learn"


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


def _installed_closure(distribution: str) -> list[str]:
    """``distribution`` and everything it requires, as installed here (extras left out)."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict[str, str] = {}
    pending = [distribution]
    while pending:
        name = pending.pop()
        if canonicalize_name(name) in found:
            continue
        dist = metadata.distribution(name)
        found[canonicalize_name(name)] = dist.metadata["Name"]
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted(found.values())


def _on_emulator(endpoint_url: str | None) -> bool:
    """Whether the connection points at an emulator (127.0.0.1, or the Compose file's
    ``local-aws`` service) rather than at an AWS endpoint."""
    from urllib.parse import urlparse

    host = urlparse(endpoint_url).hostname or "" if endpoint_url else ""
    return bool(host) and not host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".aws"))


def _exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether ``s3://bucket/key`` exists (a missing key is False, other errors raise)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return False
        raise
    return True


def _call_endpoint(hook: Any, endpoint: dict[str, Any], payload: Any) -> dict[str, Any]:
    """POST ``payload`` to the real endpoint with what its auth mode needs (a SigV4
    signature with the connection's credentials, or the stack's API key); the answer in
    the shape of a Lambda proxy response."""
    from tdv_airflow.core.stacks import describe
    from tdv_airflow.endpoint.client import api_key_value, call_endpoint, endpoint_auth_of

    clients = hook.clients()
    stack = describe(clients.cloudformation, endpoint["stack_name"]) or {}
    mode = endpoint_auth_of(stack)
    api_key = api_key_value(clients, stack) if mode == "api_key" else None
    answer = call_endpoint(endpoint["api_endpoint"], payload, mode, session=hook.get_session(),
                           api_key=api_key)
    return {"statusCode": answer.status, "body": answer.body.decode(errors="replace")}


def _check_answer(response: dict[str, Any], expected: list[Any] | None, sent: int
                  ) -> list[Any]:
    """The predictions of a good answer; raise with the answer otherwise."""
    import json

    status, body = response.get("statusCode"), response.get("body")
    if status != 200:
        raise ValueError(f"smoke test: the endpoint answered {status}: {body}")
    predictions = json.loads(body or "{}").get("predictions")
    if not isinstance(predictions, list) or len(predictions) != sent:
        raise ValueError(f"smoke test: expected {sent} predictions, got {body}")
    if expected is not None and predictions != list(expected):
        raise ValueError(f"smoke test: expected predictions {expected}, got {predictions}")
    return predictions


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
    user_defined_macros={"stack_name_from": stack_name_from},
    params={
        "model_name": Param("iris", type="string", pattern="^[A-Za-z0-9-]{1,40}$",
                            description="Names the model's S3 keys and the stack."),
        "stack_prefix": Param("tdv", type="string", pattern="^[A-Za-z][A-Za-z0-9-]{0,40}$",
                              description="The stack is named {stack_prefix}-{model_name}."),
        "bucket": Param(DEFAULT_BUCKET, type="string", minLength=3, maxLength=63,
                        description="Bucket for the model and the deployment artifacts."),
        "model_prefix": Param("models", type="string", minLength=1,
                              description="Key prefix of the trained models."),
        "endpoint_auth": Param("iam", enum=["iam", "api_key", "none"],
                               description="Who may call the endpoint: SigV4-signed callers "
                                           "(iam), holders of the API key, or anyone (none)."),
        "on_exists": Param("update", enum=["update", "skip", "fail"],
                           description="What to do when the stack already exists."),
        "stack_mode": Param(STACK_MODE, enum=["stable", "per_version"],
                            description="stable: one stack updated in place; per_version: "
                                        "one immutable stack per model version."),
        "keep_versions": Param(3, type="integer", minimum=1,
                               description="per_version mode: how many of the newest "
                                           "version stacks to keep."),
        "template_path": Param(None, type=["null", "string"],
                               description="A custom CloudFormation template on the worker."),
        "dependencies": Param(None, type=["null", "object", "array"],
                              description="The dependency layer (Dependencies fields); "
                                          "default: the scikit-learn that trained the model."),
        "smoke_payload": Param(
            {"instances": [dict(zip(FEATURES, (5.1, 3.5, 1.4, 0.2), strict=True)),
                           dict(zip(FEATURES, (6.7, 3.0, 5.2, 2.3), strict=True))]},
            type="object", description="The request the smoke test posts."),
        "smoke_expected": Param([0, 2], type=["null", "array"],
                                description="The predictions it must get back (null: any)."),
    },
) as dag:

    @task
    def train_model(**context: Any) -> dict[str, Any]:
        """Train on iris, store the model under a versioned key; return key and layer."""
        import hashlib
        import pickle

        import sklearn
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        from tdv_airflow.hooks import TdvDeploymentHook

        params = context["params"]
        hook = TdvDeploymentHook(aws_conn_id=AWS_CONN_ID)
        s3, bucket = hook.get_client("s3"), params["bucket"]
        if _on_emulator(hook.endpoint_url) and bucket not in {
                b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
            s3.create_bucket(Bucket=bucket)
        version = model_version_from_context(context)
        key = f"{params['model_prefix']}/{params['model_name']}/{version}/model.pkl"
        if _exists(s3, bucket, key):
            print(f"model s3://{bucket}/{key} already exists: version {version} is not "
                  f"retrained")
        else:
            features, labels = load_iris(return_X_y=True)
            model = LogisticRegression(max_iter=1000).fit(features, labels)
            data = pickle.dumps(model)
            s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm="SHA256")
            print(f"model s3://{bucket}/{key}: {len(data)} bytes, sha256 "
                  f"{hashlib.sha256(data).hexdigest()}, training accuracy "
                  f"{model.score(features, labels):.3f}")
        dependencies = params["dependencies"] or (
            {"from_installed": _installed_closure(MODEL_LIBRARY)}
            if _on_emulator(hook.endpoint_url)
            else {"requirements": [f"{MODEL_LIBRARY}=={sklearn.__version__}"]})
        deployment = stack_name_from(params["stack_prefix"], params["model_name"])
        stack_name = (stack_name_from(deployment, version)
                      if params["stack_mode"] == "per_version" else deployment)
        return {"model_s3_key": key, "dependencies": dependencies, "version": version,
                "stack_name": stack_name, "deployment": deployment}

    @task
    def smoke_test(endpoint: dict[str, Any], **context: Any) -> list[Any]:
        """Post the sample to the new endpoint and check the predictions."""
        from tdv_airflow.hooks import TdvDeploymentHook

        params = context["params"]
        payload = params["smoke_payload"]
        hook = TdvDeploymentHook(aws_conn_id=AWS_CONN_ID)
        if _on_emulator(hook.endpoint_url):
            from tdv_airflow.local.run import invoke_deployed

            response = invoke_deployed(hook.clients(), endpoint["stack_name"], payload)
        else:
            response = _call_endpoint(hook, endpoint, payload)
        predictions = _check_answer(response, params["smoke_expected"],
                                    len(prepro_fn(payload)))
        print(f"{endpoint['api_endpoint']} answered {predictions}")
        return predictions

    @task
    def retire_old_versions(**context: Any) -> list[str]:
        """per_version mode: delete the deployment's stacks beyond the newest
        ``keep_versions``; returns their names (nothing in stable mode)."""
        from tdv_airflow.core import retention as lifecycle
        from tdv_airflow.hooks import TdvDeploymentHook

        params = context["params"]
        if params["stack_mode"] != "per_version":
            print("stable mode: one stack, nothing to retire")
            return []
        cfn = TdvDeploymentHook(aws_conn_id=AWS_CONN_ID).conn
        deployment = stack_name_from(params["stack_prefix"], params["model_name"])
        with lifecycle.aws_reachable(f"retirement of {deployment!r} stacks"):
            retired = lifecycle.retire(cfn, deployment, int(params["keep_versions"]),
                                       poll_interval=min(POKE_INTERVAL, 5.0),
                                       exclude=[deployment])  # the stable stack, if any
        print(f"retired {retired or 'no stack'}; kept the newest {params['keep_versions']}")
        return retired

    trained = train_model()
    stack_name = trained["stack_name"]
    prepare = PrepareDeploymentOperator(
        task_id="prepare_deployment",
        bucket="{{ params.bucket }}",
        model_s3_key=trained["model_s3_key"],
        prepro_fn=prepro_fn,
        template_stack_local_path="{{ params.template_path or '' }}",
        dependencies=trained["dependencies"],
        aws_conn_id=AWS_CONN_ID,
    )
    create = CreateStackOperator(
        task_id="create_stack",
        prepare_env_response=prepare.output,
        stack_name=stack_name,
        on_exists="{{ params.on_exists }}",
        endpoint_auth="{{ params.endpoint_auth }}",
        tags={"tdv-airflow:deployment":
              "{{ stack_name_from(params.stack_prefix, params.model_name) }}"},
        poll_interval=POKE_INTERVAL,
        aws_conn_id=AWS_CONN_ID,
    )
    wait = StackStatusSensor(
        task_id="wait_for_stack",
        stack_name=stack_name,
        deferrable=SENSOR_MODE == "deferrable",
        mode="reschedule" if SENSOR_MODE == "reschedule" else "poke",
        poke_interval=POKE_INTERVAL,
        timeout=3600,
        not_found_grace_period=120,
        aws_conn_id=AWS_CONN_ID,
    )
    create >> wait
    smoke_test(wait.output) >> retire_old_versions()
