"""Train the iris model and publish it as an Airflow Asset (one half of an example pair).

Each run trains a classifier, stores it under a new key, ``models/iris-asset/{version}/
model.pkl`` (version = the logical date or the run id), and publishes the asset
``s3://tdv-airflow-models/models/iris-asset`` with that key and the object's SHA-256 in
the event's ``extra``. ``deploy_on_new_model`` is scheduled on that asset: whoever owns
this DAG, each model it publishes is deployed, with no trigger and no shared convention.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow.sdk import DAG, task

from tdv_airflow.assets import model_asset, model_event_extra
from tdv_airflow.core.naming import model_version_from_context

BUCKET, PREFIX = "tdv-airflow-models", "models/iris-asset"
# [START howto_asset_model]
#: The model line: the asset every model this DAG trains is an event of.
MODEL = model_asset(BUCKET, PREFIX)
# [END howto_asset_model]

with DAG(
    dag_id="train_model_asset",
    description="Train the iris model; publish each new model as an asset event.",
    doc_md=__doc__, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False, max_active_runs=1, tags=["tdv-airflow", "ml", "example", "assets"],
) as dag:

    # [START howto_asset_publish_model]
    @task(outlets=[MODEL])
    def train(**context: Any) -> dict[str, str]:
        """Train, store under a new key, publish the key and digest as the event's extra."""
        import hashlib
        import pickle

        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        from tdv_airflow.hooks import TdvDeploymentHook

        features, labels = load_iris(return_X_y=True)
        body = pickle.dumps(LogisticRegression(max_iter=1000).fit(features, labels))
        key = f"{PREFIX}/{model_version_from_context(context)}/model.pkl"
        TdvDeploymentHook().get_client("s3").put_object(Bucket=BUCKET, Key=key, Body=body)
        extra = model_event_extra(BUCKET, key, hashlib.sha256(body).hexdigest())
        context["outlet_events"][MODEL].extra = extra
        return extra
    # [END howto_asset_publish_model]

    train()
