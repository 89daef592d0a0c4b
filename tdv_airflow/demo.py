"""The demo: train a model, deploy it to the embedded local AWS, print the endpoint.

Run it with ``python3 dev.py demo`` (or ``python -m tdv_airflow.demo`` inside the venv).
It needs the ``dev`` extra (moto, scikit-learn).
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from typing import Any

from tdv_airflow.local_aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, LocalAws

BUCKET = "tdv-demo-models"
MODEL_KEY = "iris/v1/model.pkl"


def iris_features(payload: dict[str, Any]) -> list[list[float]]:
    """The demo's preprocessing: ``{"instances": [{"sepal_length": ...}, ...]}`` to rows."""
    return [_row(item) for item in payload["instances"]]


def _row(item: dict[str, Any]) -> list[float]:
    return [float(item[name]) for name in
            ("sepal_length", "sepal_width", "petal_length", "petal_width")]


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def main() -> None:
    """Run the demo end to end."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from tdv_airflow import Deploy, UserAwsAuth
    from tdv_airflow.auth import AwsClients
    from tdv_airflow.layers import Dependencies
    from tdv_airflow.local_run import invoke_deployed

    logging.basicConfig(level=logging.INFO, format="    %(message)s")
    _step("starting the embedded local AWS (moto server)")
    with LocalAws() as aws:
        print(f"    endpoint: {aws.endpoint_url}")
        auth = UserAwsAuth(FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY,
                           endpoint_url=aws.endpoint_url)
        s3 = auth.session(aws.region).client("s3", endpoint_url=aws.endpoint_url)
        s3.create_bucket(Bucket=BUCKET)

        _step("training a logistic regression on the iris data set")
        data = load_iris()
        model = LogisticRegression(max_iter=500).fit(data.data, data.target)
        buf = io.BytesIO()
        pickle.dump(model, buf)
        s3.put_object(Bucket=BUCKET, Key=MODEL_KEY, Body=buf.getvalue())
        print(f"    model written to s3://{BUCKET}/{MODEL_KEY}")

        deps = Dependencies(from_installed=["sklearn"])
        deploy = Deploy(BUCKET, MODEL_KEY, iris_features, auth, region=aws.region,
                        stack_name="tdv-demo-iris", poll_interval=1, dependencies=deps)
        _step("prepare_deployment(): building and uploading the artifacts "
              "(with a scikit-learn layer copied from this environment)")
        response = deploy.prepare_deployment()
        for key in ("s3_layer_key", "s3_deps_layer_key", "s3_prepro_fn_location", "s3_lbd_key",
                    "url_s3_stack_template"):
            print(f"    {key}: {response[key]}")

        _step("deploy(): creating the CloudFormation stack and waiting for it")
        result = deploy.deploy(response, invoke_mode=0)
        print(f"    stack {result['stack_name']}: {result['stack_status']}")
        print(f"    api_name:     {result['api_name']}")
        print(f"    api_endpoint: {result['api_endpoint']}")

        _step("POST /predict, served by the deployed function run locally "
              "(code and layers fetched from S3; the emulator runs no Lambda)")
        payload = {"instances": [
            {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
            {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3},
        ]}
        print(f"    request:  {json.dumps(payload)}")
        answer = invoke_deployed(AwsClients.from_auth(auth, aws.region), result["stack_name"],
                                 payload)
        print(f"    response: {answer['statusCode']} {answer['body']}")
        names = [str(data.target_names[i]) for i in json.loads(answer["body"])["predictions"]]
        print(f"    classes:  {names}")
        _step("done")


if __name__ == "__main__":
    main()
