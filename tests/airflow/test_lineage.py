"""OpenLineage of the tasks (:mod:`tdv_airflow.lineage`): prepare and create run on the
emulator and report their S3 inputs with digests and the endpoint; the promotion's record
names the endpoint at its version with its URL; nothing secret; the provider is imported
only when lineage is asked for, and stays disabled without a transport."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from tdv_airflow.lineage import ENDPOINT_FACET, OpenLineageMixin, of_promote, operator_lineage
from tdv_airflow.operators import (
    CreateStackOperator,
    PrepareDeploymentOperator,
    PromoteOperator,
    RollbackOperator,
    ValidateCandidateOperator,
)
from testkit.deployed import deploy_stack
from testkit.models import MODEL_KEY, scaled_model_bytes
from testkit.task_context import FakeTaskInstance

SHA = {name: f"{i:x}" * 64 for i, name in enumerate(("model", "prepro_fn"), start=10)}


def double(payload: Any) -> list[float]:
    """A preprocessing function defined in a test module (travels by value)."""
    return [2.0 * float(x) for x in payload]


def as_json(lineage: Any) -> dict[str, Any]:
    """The lineage as the transport writes it (the client's serialiser)."""
    from openlineage.client.serde import Serde

    return {"inputs": [json.loads(Serde.to_json(d)) for d in lineage.inputs],
            "outputs": [json.loads(Serde.to_json(d)) for d in lineage.outputs]}


def by_name(datasets: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["namespace"], d["name"]): d for d in datasets}


def test_prepare_and_create_report_the_s3_inputs_with_digests_and_the_endpoint(
        s3: Any, bucket: str, model_in_s3: str, task_context: Any) -> None:
    prepare = PrepareDeploymentOperator(task_id="prepare", bucket=bucket,
                                        model_s3_key=model_in_s3, prepro_fn=double)
    started = as_json(prepare.get_openlineage_facets_on_start())
    assert [(d["namespace"], d["name"]) for d in started["inputs"]] == [
        (f"s3://{bucket}", model_in_s3)]
    response = prepare.execute(task_context())
    done = as_json(prepare.get_openlineage_facets_on_complete(None))
    model_sha = response["sha256"]["model"]
    assert list(by_name(done["inputs"])) == [(f"s3://{bucket}", model_in_s3)]
    assert set(done["inputs"][0]["facets"]) == {"datasetType", "version"}
    assert done["inputs"][0]["facets"]["version"]["datasetVersion"] == model_sha
    assert done["inputs"][0]["facets"]["datasetType"]["datasetType"] == "MODEL"
    outputs = by_name(done["outputs"])
    pickle = outputs[(f"s3://{bucket}", response["s3_prepro_fn_location"])]
    assert pickle["facets"]["version"]["datasetVersion"] == response["sha256"]["prepro_fn"]
    assert pickle["facets"]["datasetType"] == {**pickle["facets"]["datasetType"],
                                               "datasetType": "FILE", "subType": "prepro_fn"}
    assert (f"s3://{bucket}", response["s3_lbd_key"]) in outputs
    stored = {o["Key"]: o for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {name for _, name in outputs} <= set(stored), "lineage names objects S3 lacks"

    create = CreateStackOperator(task_id="create", prepare_env_response=response,
                                 stack_name="tdv-lineage", poll_interval=0.2)
    assert by_name(as_json(create.get_openlineage_facets_on_start())["inputs"]).keys() == \
        by_name(done["inputs"] + done["outputs"]).keys()
    summary = create.execute(task_context())
    created = as_json(create.get_openlineage_facets_on_complete(None))
    inputs = by_name(created["inputs"])
    assert inputs[(f"s3://{bucket}", model_in_s3)]["facets"]["version"]["datasetVersion"] \
        == model_sha
    assert inputs[(f"s3://{bucket}", response["s3_prepro_fn_location"])]["facets"]["version"][
        "datasetVersion"] == response["sha256"]["prepro_fn"]
    [stack] = created["outputs"]
    assert (stack["namespace"], stack["name"]) == ("tdv-endpoint://us-east-1", "tdv-lineage")
    account = summary["stack_id"].split(":")[4]
    assert stack["facets"]["symlinks"]["identifiers"] == [{
        "namespace": f"arn:aws:cloudformation:us-east-1:{account}",
        "name": "stack/tdv-lineage", "type": "STACK"}]
    assert stack["facets"][ENDPOINT_FACET]["stackName"] == "tdv-lineage"


#: A ``describe_stacks`` entry of a deployed stack (what :func:`of_promote` reads).
STACK = {
    "StackName": "tdv-iris",
    "StackId": "arn:aws:cloudformation:eu-west-1:123456789012:stack/tdv-iris/0b1c2d3e",
    "Parameters": [{"ParameterKey": "ArtifactBucket", "ParameterValue": "models"},
                   {"ParameterKey": "ModelKey", "ParameterValue": "iris/2/model.pkl"}],
    "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in {
        "ApiEndpoint": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/predict",
        "FrontDoor": "rest", "EndpointAuth": "API_KEY", "FunctionName": "tdv-iris",
        "ApiKeyId": "key-id-9", "LiveAlias": "live"}.items()],
}
PROMOTED = {"stack_name": "tdv-iris", "version": "3", "strategy": "all_at_once", "retired": [],
            "live": {"alias": "live", "version": "3", "previous": "2", "serving": [{
                "version": "3", "share": 1.0, "model_s3_key": "iris/2/model.pkl",
                "model_sha256": SHA["model"], "prepro_s3_key": "tdv/prepro_fn/x.pkl",
                "prepro_sha256": SHA["prepro_fn"], "run_id": "manual__1"}]}}


def test_the_promotion_reports_the_endpoint_at_its_version_with_its_url() -> None:
    lineage = as_json(operator_lineage(of_promote(STACK, PROMOTED)))
    inputs = by_name(lineage["inputs"])
    assert {k: v["facets"]["version"]["datasetVersion"] for k, v in inputs.items()} == {
        ("s3://models", "iris/2/model.pkl"): SHA["model"],
        ("s3://models", "tdv/prepro_fn/x.pkl"): SHA["prepro_fn"]}
    [endpoint] = lineage["outputs"]
    assert (endpoint["namespace"], endpoint["name"]) == ("tdv-endpoint://eu-west-1", "tdv-iris")
    assert endpoint["facets"]["version"]["datasetVersion"] == "3"
    assert endpoint["facets"]["symlinks"]["identifiers"] == [
        {"namespace": "arn:aws:cloudformation:eu-west-1:123456789012", "name": "stack/tdv-iris",
         "type": "STACK"},
        {"namespace": "https://abc123.execute-api.eu-west-1.amazonaws.com",
         "name": "/prod/predict", "type": "URL"}]
    facet = endpoint["facets"][ENDPOINT_FACET]
    assert {k: facet[k] for k in ("stackName", "url", "frontDoor", "endpointAuth", "alias",
                                  "version", "previousVersion")} == {
        "stackName": "tdv-iris", "alias": "live", "version": "3", "previousVersion": "2",
        "url": "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/predict",
        "frontDoor": "rest", "endpointAuth": "API_KEY"}
    assert facet["serving"] == [{"version": "3", "share": 1.0,
                                 "model": "s3://models/iris/2/model.pkl",
                                 "modelSha256": SHA["model"]}]
    assert facet["_schemaURL"].startswith("https://")
    assert "key-id-9" not in json.dumps(lineage), "a stack output beyond the endpoint's leaked"


def test_a_function_url_endpoint_is_the_alias_url() -> None:
    url = "https://xyz.lambda-url.eu-west-1.on.aws/"
    stack = {**STACK, "Outputs": [{"OutputKey": "FrontDoor", "OutputValue": "url"},
                                  {"OutputKey": "ApiEndpoint", "OutputValue": ""}]}
    promoted = {**PROMOTED, "live": {**PROMOTED["live"], "endpoint": url}}
    [endpoint] = as_json(operator_lineage(of_promote(stack, promoted)))["outputs"]
    assert endpoint["facets"][ENDPOINT_FACET]["url"] == url
    assert endpoint["facets"]["symlinks"]["identifiers"][1] == {
        "namespace": "https://xyz.lambda-url.eu-west-1.on.aws", "name": "/", "type": "URL"}


def test_a_task_that_recorded_nothing_reports_what_its_arguments_name() -> None:
    class Bare(OpenLineageMixin):
        bucket, model_s3_key = "b", "{{ params.key }}"  # not rendered: nothing known

    assert as_json(Bare().get_openlineage_facets_on_complete(None)) == {"inputs": [],
                                                                       "outputs": []}
    with pytest.raises(ValueError, match="not a stack ARN"):
        of_promote({**STACK, "StackId": "tdv-iris"}, PROMOTED)


_IMPORT = """
import json, sys
import airflow.sdk  # reads every provider's metadata (get_provider_info), ours too
before = set(sys.modules)
from tdv_airflow.operators import PrepareDeploymentOperator, CreateStackOperator, PromoteOperator
import tdv_airflow.lineage
print(json.dumps(sorted(m for m in set(sys.modules) - before if "openlineage" in m)))
"""

_DISABLED = """
from airflow.providers.openlineage import conf
from airflow.providers.openlineage.plugins.openlineage import OpenLineageProviderPlugin
print(conf.is_disabled(), OpenLineageProviderPlugin.listeners)
"""


def test_the_provider_is_imported_only_for_lineage_and_is_off_without_a_transport() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORT], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
    # the test environment configures no transport: the provider switches itself off
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENLINEAGE", "AIRFLOW__OPENLINEAGE__"))}
    done = subprocess.run([sys.executable, "-c", _DISABLED], capture_output=True, text=True,
                          timeout=300, check=False, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "[]"], done.stdout


def test_promotion_and_rollback_report_the_endpoint_at_the_version_they_make_live(
        aws: Any, bucket: str, task_context: Any) -> None:
    connection = {"aws_conn_id": "aws_default", "region_name": "us-east-1"}
    first = deploy_stack(aws.endpoint_url, bucket, "tdv-lineage")
    first.s3.put_object(Bucket=bucket, Key="models/v2/model.pkl", Body=scaled_model_bytes(2))
    second = type(first.deploy)(bucket, "models/v2/model.pkl", first.deploy.prepro_fn,
                                first.auth, region="us-east-1", stack_name="tdv-lineage",
                                poll_interval=0.1, max_attempts=100)
    created = second.create_stack(second.prepare_deployment(), 0)
    version = ValidateCandidateOperator(
        task_id="validate", stack_name="tdv-lineage", identity=created["identity"],
        requests=[{"payload": {"rows": [[1, 2]]}, "expected_predictions": [6.0]}],
        **connection).execute(task_context())["version"]

    def digest(key: str) -> str:
        return hashlib.sha256(first.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                              ).hexdigest()

    def reported(task: Any) -> tuple[dict[str, Any], dict[tuple[str, str], str]]:
        lineage = as_json(task.get_openlineage_facets_on_complete(None))
        [endpoint] = lineage["outputs"]
        assert (endpoint["namespace"], endpoint["name"]) == ("tdv-endpoint://us-east-1",
                                                             "tdv-lineage")
        return endpoint, {(d["namespace"], d["name"]): d["facets"]["version"]["datasetVersion"]
                          for d in lineage["inputs"] if d["facets"]["datasetType"][
                              "datasetType"] == "MODEL"}

    promote = PromoteOperator(task_id="promote", stack_name="tdv-lineage", version=version,
                              mode="poke", deferrable=False, **connection)
    promote.execute(task_context())
    endpoint, models = reported(promote)
    assert endpoint["facets"]["version"]["datasetVersion"] == version == "2"
    assert models == {(f"s3://{bucket}", "models/v2/model.pkl"): digest("models/v2/model.pkl")}
    assert endpoint["facets"][ENDPOINT_FACET]["previousVersion"] == "1"
    assert endpoint["facets"][ENDPOINT_FACET]["url"].startswith("https://")

    rollback = RollbackOperator(task_id="rollback", stack_name="tdv-lineage", **connection)
    rollback.execute(task_context(FakeTaskInstance(task_id="rollback")))
    endpoint, models = reported(rollback)
    assert endpoint["facets"]["version"]["datasetVersion"] == "1"
    assert models == {(f"s3://{bucket}", MODEL_KEY): digest(MODEL_KEY)}
