"""Deploy each model a training DAG publishes (the other half of an example pair).

Scheduled on the asset ``s3://tdv-airflow-models/models/iris-asset``: when a run of
``train_model_asset`` (or any DAG of another team publishing that asset) succeeds, this
DAG runs by itself and deploys the model its triggering asset event names (the event's
``extra``: bucket, key, SHA-256), through the provider's tasks: prepare, create or update
the stack ``tdv-iris-asset``, wait, validate the candidate version, promote it. Models
published while a deploy runs trigger one run, which deploys the newest.

``promote`` then emits the endpoint's own asset event (``tdv-endpoint://{region}/
tdv-iris-asset``, through the alias ``tdv-airflow-endpoints``): DAGs downstream of the
endpoint may be scheduled on it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, task

from tdv_airflow.assets import model_asset, model_from_events
from tdv_airflow.operators import (
    CreateStackOperator,
    PrepareDeploymentOperator,
    PromoteOperator,
    ValidateCandidateOperator,
)
from tdv_airflow.sensors import StackStatusSensor

STACK = "tdv-iris-asset"
# [START howto_asset_schedule]
#: The asset the training DAG publishes (the same URI: nothing else is shared).
MODEL = model_asset("tdv-airflow-models", "models/iris-asset")
# [END howto_asset_schedule]
SAMPLE = {"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}


def prepro_fn(payload: Any) -> list[list[float]]:
    """``{"instances": [[4 numbers], ...]}`` as the model's rows (runs in Lambda)."""
    return [[float(value) for value in row] for row in payload["instances"]]


with DAG(
    dag_id="deploy_on_new_model",
    description="Deploy the model each asset event of the training DAG names.",
    doc_md=__doc__, schedule=[MODEL], start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False, max_active_runs=1, tags=["tdv-airflow", "ml", "example", "assets"],
) as dag:

    # [START howto_asset_triggering_event]
    @task
    def model_of_event(**context: Any) -> dict[str, str]:
        """The bucket, key and SHA-256 the triggering asset event names (the newest)."""
        return model_from_events(context["triggering_asset_events"][MODEL], MODEL)

    model = model_of_event()
    prepare = PrepareDeploymentOperator(
        task_id="prepare_deployment", bucket=model["bucket"],
        model_s3_key=model["model_s3_key"], prepro_fn=prepro_fn,
        dependencies={"from_installed": ["scikit-learn"]})
    # [END howto_asset_triggering_event]
    create = CreateStackOperator(task_id="create_stack", prepare_env_response=prepare.output,
                                 stack_name=STACK)
    wait = StackStatusSensor(task_id="wait_for_stack", stack_name=STACK, timeout=3600,
                             expected_fingerprint=create.output["fingerprint"])
    validate = ValidateCandidateOperator(
        task_id="validate_candidate", stack_name=STACK, identity=create.output["identity"],
        requests=[{"payload": SAMPLE, "expected_predictions": [0, 2]}])
    # [START howto_asset_endpoint_event]
    promote = PromoteOperator(  # emits tdv-endpoint://{region}/tdv-iris-asset when live
        task_id="promote", stack_name=STACK, version=validate.output["version"])
    # [END howto_asset_endpoint_event]
    create >> wait >> validate >> promote
