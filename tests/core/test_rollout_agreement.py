"""The stack and the live alias agree after every step, whatever moves the alias: the
template declares no version or alias, the API invokes the alias, a stack update leaves
the alias's weights and the published versions alone, and the function's role reads the
artifacts of every version still published."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tdv_airflow.core import rollout, versions
from tdv_airflow.core.stacks import describe
from testkit.deployed import DeployedStack, deploy_stack
from testkit.models import make_deploy, scaled_model_bytes

STACK = "tdv-agree"


def _deploy_model(live: DeployedStack, factor: float) -> dict[str, Any]:
    """Update the stack to a model scaling sums by ``factor`` (no publication)."""
    key = f"models/sec/x{factor:g}/model.pkl"
    live.s3.put_object(Bucket=live.bucket, Key=key, Body=scaled_model_bytes(factor))
    other = make_deploy(live.auth, live.bucket, STACK, model_s3_key=key)
    return other.create_stack(other.prepare_deployment(), 0)


def _role_reads(live: DeployedStack) -> set[str]:
    iam = live.session.client("iam", endpoint_url=live.auth.endpoint_url)
    roles = [r["PhysicalResourceId"] for r in
             live.clients.cloudformation.describe_stack_resources(
                 StackName=STACK)["StackResources"] if r.get("ResourceType") == "AWS::IAM::Role"]
    assert len(roles) == 1, roles
    role = roles[0]
    readable: set[str] = set()
    for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
        document = json.loads(document) if isinstance(document, str) else document
        for statement in document["Statement"]:
            if "s3:GetObject" in json.dumps(statement.get("Action")):
                found = statement["Resource"]
                readable |= set([found] if isinstance(found, str) else found)
    return readable


@pytest.fixture
def live(aws: Any, bucket: str) -> DeployedStack:
    return deploy_stack(aws.endpoint_url, bucket, STACK)


def test_the_template_leaves_versions_and_weights_to_the_core(live: DeployedStack) -> None:
    cfn = live.clients.cloudformation
    body = cfn.get_template(StackName=STACK)["TemplateBody"]
    body = json.loads(body) if isinstance(body, str) else body
    types = {r["Type"] for r in body["Resources"].values()}
    assert not types & {"AWS::Lambda::Version", "AWS::Lambda::Alias"}
    method = body["Resources"]["PredictMethod"]["Properties"]["Integration"]["Uri"]
    assert ":live/invocations" in json.dumps(method)
    assert live.outputs["LiveAlias"] == "live"


def test_a_stack_update_mid_canary_leaves_the_alias_and_versions_as_they_are(
        live: DeployedStack) -> None:
    lam = live.clients.lambda_
    second = _deploy_model(live, 2)
    stack = describe(live.clients.cloudformation, STACK)
    assert stack is not None
    published = versions.publish_candidate(
        lam, STACK, second["identity"], versions.function_identity(stack["Parameters"]))
    rollout.advance(lam, STACK, published.version, [0.5, 1.0], 600)
    before = lam.get_alias(FunctionName=STACK, Name="live")

    _deploy_model(live, 3)  # the next night's candidate, while the canary still bakes

    after = lam.get_alias(FunctionName=STACK, Name="live")
    assert (after["FunctionVersion"], after["RoutingConfig"]) == (
        before["FunctionVersion"], before["RoutingConfig"]) == ("1", {
            "AdditionalVersionWeights": {"2": 0.5}})
    records = {r.version: r for r in versions.list_versions(lam, STACK)}
    assert sorted(records) == ["1", "2"]
    assert records["2"].model_key == "models/sec/x2/model.pkl"
    assert records["1"].model_key == live.prepared["model_s3_key"]
    # every version the alias routes to exists and still may read its own artifacts
    readable = _role_reads(live)
    for version in ("1", "2"):
        for bucket, key in records[version].artifacts():
            assert f"arn:aws:s3:::{bucket}/{key}" in readable, (version, key, readable)
    assert f"arn:aws:s3:::{live.bucket}/models/sec/x3/model.pkl" in readable


def test_a_version_retired_is_no_longer_readable_after_the_next_deployment(
        live: DeployedStack) -> None:
    lam = live.clients.lambda_
    second = _deploy_model(live, 2)
    stack = describe(live.clients.cloudformation, STACK)
    assert stack is not None
    v2 = versions.publish_candidate(lam, STACK, second["identity"],
                                    versions.function_identity(stack["Parameters"]))
    rollout.advance(lam, STACK, v2.version, [1.0], 1)
    third = _deploy_model(live, 3)
    stack = describe(live.clients.cloudformation, STACK)
    assert stack is not None
    v3 = versions.publish_candidate(lam, STACK, third["identity"],
                                    versions.function_identity(stack["Parameters"]))
    rollout.advance(lam, STACK, v3.version, [1.0], 1)
    assert versions.prune(lam, STACK, 1, {"3", "2"}) == ["1"]
    _deploy_model(live, 4)
    readable = _role_reads(live)
    assert f"arn:aws:s3:::{live.bucket}/{live.prepared['model_s3_key']}" not in readable
    assert f"arn:aws:s3:::{live.bucket}/models/sec/x2/model.pkl" in readable
