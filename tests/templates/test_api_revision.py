"""A method or integration change brought by a new template reaches the stage: the API's
revision is part of each deployment's logical id (finding 10a of issue 11)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core import stacks
from tdv_airflow.core.resources import default_template_path
from tdv_airflow.core.template import (
    REVISION_LENGTH,
    api_revision,
    parse_template,
    read_template,
    with_api_revision,
)
from tdv_airflow.local.aws import LocalAws
from testkit.deployed import deploy_stack

DEPLOYMENTS = ("ApiDeploymentAwsIam", "ApiDeploymentApiKey", "ApiDeploymentNone")


def shipped() -> tuple[bytes, dict[str, Any]]:
    return read_template(default_template_path())


def test_the_shipped_deployments_carry_the_revision_and_every_reference_follows() -> None:
    data, body = shipped()
    revised_bytes, revised = with_api_revision(data, body)
    revision = api_revision(body)
    assert len(revision) == REVISION_LENGTH
    names = {f"{name}{revision}" for name in DEPLOYMENTS}
    assert names <= set(revised["Resources"])
    assert not set(DEPLOYMENTS) & set(revised["Resources"])
    text = revised_bytes.decode()
    for old in DEPLOYMENTS:  # no reference to an old id is left
        assert f'"{old}"' not in text and "${" + old + "}" not in text
    stage = json.dumps(revised["Resources"]["ApiStage"]["Properties"]["DeploymentId"])
    assert all(name in stage for name in names)
    assert json.loads(revised_bytes) == revised
    assert list(revised) == list(body)  # the sections keep their order

    from cfnlint.api import lint_all

    assert [str(m) for m in lint_all(text)] == []


def changed(body: dict[str, Any], change: Any) -> dict[str, Any]:
    copied = copy.deepcopy(body)
    change(copied)
    return copied


def _props(body: dict[str, Any], name: str) -> dict[str, Any]:
    props: dict[str, Any] = body["Resources"][name]["Properties"]
    return props


@pytest.mark.parametrize("what,change", [
    ("integration timeout", lambda b: _props(b, "PredictMethod")["Integration"].update(
        TimeoutInMillis=20000)),
    ("method request parameter", lambda b: _props(b, "PredictMethod").update(
        RequestParameters={"method.request.header.x-tenant": True})),
    ("resource path", lambda b: _props(b, "PredictResource").update(PathPart="score")),
    ("API policy", lambda b: _props(b, "RestApi").update(Policy={
        "Version": "2012-10-17", "Statement": []})),
    ("auth condition", lambda b: b["Conditions"]["AuthIsNone"]["Fn::Equals"].__setitem__(
        1, "OPEN")),
])
def test_an_api_change_changes_the_revision(what: str, change: Any) -> None:
    _, body = shipped()
    assert api_revision(changed(body, change)) != api_revision(body), what


@pytest.mark.parametrize("what,change", [
    ("log retention", lambda b: _props(b, "LogGroup").update(RetentionInDays=7)),
    ("function memory", lambda b: _props(b, "PredictFunction").update(MemorySize=512)),
    ("method metadata", lambda b: b["Resources"]["PredictMethod"]["Metadata"].update(
        note="documentation only")),
    ("stage settings", lambda b: _props(b, "ApiStage").update(Description="other")),
])
def test_a_change_outside_the_api_keeps_the_deployments(what: str, change: Any) -> None:
    _, body = shipped()
    assert api_revision(changed(body, change)) == api_revision(body), what


def test_a_template_without_marked_deployments_is_left_as_it_is() -> None:
    data = json.dumps({"Resources": {"D": {"Type": "AWS::ApiGateway::Deployment",
                                           "Properties": {"RestApiId": "x"}}}}).encode()
    body = parse_template(data, "t.json")
    assert with_api_revision(data, body) == (data, body)


def test_a_yaml_template_is_written_back_as_json_with_its_references() -> None:
    text = (b"Resources:\n"
            b"  Api:\n    Type: AWS::ApiGateway::RestApi\n    Properties: {Name: x}\n"
            b"  Dep:\n    Type: AWS::ApiGateway::Deployment\n"
            b"    Metadata: {'tdv-airflow:api-revision': yes}\n"
            b"    Properties: {RestApiId: !Ref Api}\n"
            b"  Stage:\n    Type: AWS::ApiGateway::Stage\n    DependsOn: [Dep]\n"
            b"    Properties:\n      RestApiId: !Ref Api\n      DeploymentId: !Ref Dep\n"
            b"      Description: !Sub 'deployment ${Dep} of ${Api}, ${!Dep}'\n"
            b"      Variables: {v: !GetAtt Dep.Id}\n")
    body = parse_template(text, "t.yaml")
    data, revised = with_api_revision(text, body)
    new = f"Dep{api_revision(body)}"
    stage = revised["Resources"]["Stage"]
    assert json.loads(data) == revised and new in revised["Resources"]
    assert stage["DependsOn"] == [new]
    assert stage["Properties"]["DeploymentId"] == {"Ref": new}
    assert stage["Properties"]["Description"] == {
        "Fn::Sub": "deployment ${" + new + "} of ${Api}, ${!Dep}"}
    assert stage["Properties"]["Variables"] == {"v": {"Fn::GetAtt": [new, "Id"]}}


def deployments(clients: Any, stack_name: str) -> tuple[set[str], set[str]]:
    """The stack's deployments: their logical ids, and the REST API's deployment ids."""
    resources = clients.cloudformation.describe_stack_resources(
        StackName=stack_name)["StackResources"]
    logical = {r["LogicalResourceId"] for r in resources
               if r.get("ResourceType") == "AWS::ApiGateway::Deployment"}
    rest_api = stacks.outputs_of(stacks.describe(clients.cloudformation, stack_name)
                                 or {})["ApiId"]
    live = {d["id"] for d in clients.apigateway.get_deployments(restApiId=rest_api)["items"]}
    return logical, live


def test_a_template_upgrade_that_changes_the_method_creates_a_new_deployment(
        aws: LocalAws, tmp_path: Path) -> None:
    first = deploy_stack(aws.endpoint_url, "tdv-revision", "tdv-rev")
    logical, live = deployments(first.clients, "tdv-rev")
    assert len(logical) == 1 and next(iter(logical)).startswith("ApiDeploymentAwsIam")
    assert len(live) == 1

    _, body = shipped()
    _props(body, "PredictMethod")["Integration"]["TimeoutInMillis"] = 20000
    upgraded = tmp_path / "stack_template.json"
    upgraded.write_text(json.dumps(body, indent=2))
    second = deploy_stack(aws.endpoint_url, "tdv-revision", "tdv-rev",
                          template_stack_local_path=str(upgraded))
    assert second.created["operation"] == "updated"
    logical_after, live_after = deployments(second.clients, "tdv-rev")
    assert len(logical_after) == 1 and logical_after != logical  # a new logical id ...
    # ... is a new deployment (AWS deletes the replaced one when the update completes;
    # moto keeps it, which changes nothing for the stage)
    assert len(live_after - live) == 1

    same = deploy_stack(aws.endpoint_url, "tdv-revision", "tdv-rev",
                        template_stack_local_path=str(upgraded))
    assert deployments(same.clients, "tdv-rev") == (logical_after, live_after)  # kept
