"""The demo: the nightly retrain-and-deploy DAG, run once on the embedded local AWS.

``python3 dev.py demo`` (or ``python -m tdv_airflow.local.demo`` inside the venv) starts a
local AWS emulator, creates the bucket there, gives Airflow a private home
(``.tdv/demo-airflow``) whose ``aws_default`` connection points at the emulator and whose
configuration defers waiting tasks, runs ``airflow dags test retrain_and_deploy`` with the
bucket as its ``bucket`` Param (train → prepare → create stack → deferrable sensor →
validate the candidate version → promote it → retire old versions), and prints each
task, the endpoint, the live version and the prediction the candidate served.

``python3 dev.py demo --without-airflow`` runs the same deployment through the
``Deploy`` class instead. Both need the ``dev`` extra (moto, scikit-learn).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from tdv_airflow.core.clients import UserAwsAuth
from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, LocalAws

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "retrain_and_deploy"
BUCKET = "tdv-demo-models"
MODEL_KEY = "iris/v1/model.pkl"
SAMPLE = {"instances": [
    {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    {"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.2, "petal_width": 2.3},
]}


def iris_features(payload: dict[str, Any]) -> list[list[float]]:
    """The ``Deploy`` demo's preprocessing: ``{"instances": [{...}, ...]}`` to rows."""
    return [_row(item) for item in payload["instances"]]


def _row(item: dict[str, Any]) -> list[float]:
    return [float(item[name]) for name in
            ("sepal_length", "sepal_width", "petal_length", "petal_width")]


def _step(text: str) -> None:
    print(f"==> {text}", flush=True)


def _airflow_env(aws: LocalAws, home: Path) -> dict[str, str]:
    """Airflow's environment: a private home, the emulator as ``aws_default``, waiting
    tasks deferred to the (in-line) triggerer, stack polls every 2 s."""
    env = {**os.environ, **aws.environ(),
           "AIRFLOW_HOME": str(home),
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "true",
           "AIRFLOW__TDV_AIRFLOW__POLL_INTERVAL": "2"}
    env.pop("AWS_PROFILE", None)
    return env


def _create_bucket(aws: LocalAws) -> None:
    """Create the demo's bucket on the emulator (the DAG expects it to exist)."""
    auth = UserAwsAuth(FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, endpoint_url=aws.endpoint_url)
    auth.session(aws.region).client("s3", endpoint_url=aws.endpoint_url).create_bucket(
        Bucket=BUCKET)


_READ_RUN = """
import json, sys
from sqlalchemy import select
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
with create_session() as s:
    run = s.scalars(select(DagRun).where(DagRun.dag_id == sys.argv[1])
                    .order_by(DagRun.id.desc()).limit(1)).one()
    where = (XComModel.dag_id == run.dag_id, XComModel.run_id == run.run_id,
             XComModel.key == "return_value")
    print(json.dumps({
        "run_id": run.run_id, "state": str(run.state),
        "tis": {ti.task_id: str(ti.state) for ti in s.scalars(select(TaskInstance).where(
            TaskInstance.dag_id == run.dag_id, TaskInstance.run_id == run.run_id))},
        "xcoms": {x.task_id: x.value for x in s.scalars(select(XComModel).where(*where))},
    }, default=str))
"""


def run_dag() -> int:
    """Run the example DAG with ``airflow dags test`` on the local AWS."""
    home = ROOT / ".tdv" / "demo-airflow"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    airflow = str(Path(sys.executable).with_name("airflow"))
    _step("starting the embedded local AWS (moto server)")
    with LocalAws() as aws:
        print(f"    endpoint: {aws.endpoint_url}")
        env = _airflow_env(aws, home)
        _create_bucket(aws)
        print(f"    bucket:   s3://{BUCKET}")
        _step(f"airflow db migrate (AIRFLOW_HOME={home.relative_to(ROOT)})")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True,  # noqa: S603 - fixed argv, no shell
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log = home / "dags-test.log"
        _step(f"airflow dags test {DAG_ID}: train -> prepare -> create stack -> "
              f"wait (deferrable) -> validate -> promote -> retire old versions   "
              f"(full log: {log.relative_to(ROOT)})")
        with log.open("w") as out:
            code = subprocess.call(  # noqa: S603 - fixed argv
                [airflow, "dags", "test", DAG_ID, "-c", json.dumps({"bucket": BUCKET})],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        done = subprocess.run(  # noqa: S603 - our own snippet, fixed argv
            [sys.executable, "-c", _READ_RUN, DAG_ID], env=env, capture_output=True, text=True,
            check=True)
    run = json.loads(done.stdout.strip().splitlines()[-1])
    order = ["train_model", "prepare_deployment", "create_stack", "wait_for_stack",
             "validate_candidate", "promote", "retire_old_versions"]
    for task_id, state in sorted(run["tis"].items(),
                                 key=lambda item: order.index(item[0]) if item[0] in order else 99):
        print(f"    {task_id:20s} {state}")
    if code != 0 or run["state"] != "success":
        print(f"the run {run['run_id']} ended {run['state']}: see {log}", file=sys.stderr)
        return 1
    endpoint, prepared = run["xcoms"]["wait_for_stack"], run["xcoms"]["prepare_deployment"]
    _step("done")
    print(f"    model:        s3://{prepared['bucket']}/{prepared['model_s3_key']}")
    print(f"    stack:        {endpoint['stack_name']} ({endpoint['stack_status']})")
    print(f"    api_name:     {endpoint['api_name']}")
    print(f"    api_endpoint: {endpoint['api_endpoint']}")
    validated, promoted = run["xcoms"]["validate_candidate"], run["xcoms"]["promote"]
    print(f"    live version: {promoted['version']} (alias live, {promoted['strategy']})")
    print(f"    prediction:   {validated['answers'][0]['predictions']} for the smoke test's "
          f"two irises, served by version {validated['version']} before it took traffic "
          "(run locally: the emulator runs no Lambda)")
    return 0


def run_deploy_api() -> int:
    """Run the same deployment through ``Deploy``, without Airflow."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from tdv_airflow import Deploy
    from tdv_airflow.core.clients import AwsClients
    from tdv_airflow.core.layers import Dependencies
    from tdv_airflow.local.process import invoke_deployed

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
        buf = io.BytesIO()
        pickle.dump(LogisticRegression(max_iter=500).fit(data.data, data.target), buf)
        s3.put_object(Bucket=BUCKET, Key=MODEL_KEY, Body=buf.getvalue())
        print(f"    model written to s3://{BUCKET}/{MODEL_KEY}")
        deploy = Deploy(BUCKET, MODEL_KEY, iris_features, auth, region=aws.region,
                        stack_name="tdv-demo-iris", poll_interval=1,
                        dependencies=Dependencies(from_installed=("sklearn",)))
        _step("prepare_deployment(): building and uploading the artifacts "
              "(with a scikit-learn layer copied from this environment)")
        response = deploy.prepare_deployment()
        for key in ("s3_layer_key", "s3_deps_layer_key", "s3_prepro_fn_location",
                    "s3_lbd_key", "url_s3_stack_template"):
            print(f"    {key}: {response[key]}")
        _step("deploy(): creating the CloudFormation stack and waiting for it")
        result = deploy.deploy(response, invoke_mode=0)
        print(f"    stack {result['stack_name']}: {result['stack_status']}")
        print(f"    api_name:     {result['api_name']}")
        print(f"    api_endpoint: {result['api_endpoint']}")
        _step("POST /predict, served by the deployed function run locally "
              "(code and layers fetched from S3; the emulator runs no Lambda)")
        print(f"    request:  {json.dumps(SAMPLE)}")
        answer = invoke_deployed(AwsClients.from_auth(auth, aws.region), result["stack_name"],
                                 SAMPLE)
        print(f"    response: {answer['statusCode']} {answer['body']}")
        _step("done")
    return 0 if answer["statusCode"] == 200 else 1


def main(argv: list[str] | None = None) -> int:
    """Run the demo.

    :param argv: ``["--without-airflow"]`` to use the ``Deploy`` class instead of the DAG.
    """
    parser = argparse.ArgumentParser(prog="python3 dev.py demo", description=__doc__)
    parser.add_argument("--without-airflow", action="store_true",
                        help="deploy through the Deploy class instead of the DAG")
    args = parser.parse_args(argv)
    return run_deploy_api() if args.without_airflow else run_dag()


if __name__ == "__main__":
    sys.exit(main())
