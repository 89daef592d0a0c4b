"""The function's role on the (faithful) emulator: during and after an update it reads
the previous configuration's model and pickle as well as the new ones, and nothing else;
the next update drops the older ones; a retried update changes nothing."""

from __future__ import annotations

from typing import Any

from tdv_airflow.core import stacks
from tdv_airflow.core.function_scope import parameters_of
from tdv_airflow.local.aws import LocalAws
from testkit.deployed import DeployedStack, deploy_stack

STACK = "tdv-role-scope"


def rows_plus_one(payload: dict[str, Any]) -> list[list[float]]:
    """Another preprocessing function (another pickle, another key)."""
    return [[float(v) + 1 for v in row] for row in payload["rows"]]


def rows_times_two(payload: dict[str, Any]) -> list[list[float]]:
    """A third one."""
    return [[float(v) * 2 for v in row] for row in payload["rows"]]


def role_policy(deployed: DeployedStack) -> dict[str, Any]:
    """The function role's inline policy: ``{action: sorted resources}`` of every statement."""
    cfn = deployed.session.client("cloudformation", endpoint_url=deployed.auth.endpoint_url)
    iam = deployed.session.client("iam", endpoint_url=deployed.auth.endpoint_url)
    role = next(r["PhysicalResourceId"] for r in
                cfn.describe_stack_resources(StackName=STACK)["StackResources"]
                if r["LogicalResourceId"] == "FunctionRole")
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert names == ["read-artifacts-write-logs"]
    document = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
    out: dict[str, Any] = {}
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) \
            else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) \
            else [statement["Resource"]]
        out[",".join(actions)] = sorted(resources)
    return out


def arns(bucket: str, *keys: str) -> list[str]:
    return sorted(f"arn:aws:s3:::{bucket}/{key}" for key in keys)


def test_an_update_keeps_the_previous_configuration_readable_and_nothing_else(
        aws: LocalAws) -> None:
    bucket = "tdv-role-scope"
    first = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/a/model.pkl")
    a = (first.prepared["model_s3_key"], first.prepared["s3_prepro_fn_location"])
    logs = role_policy(first)["logs:CreateLogStream,logs:PutLogEvents"]
    assert role_policy(first) == {"s3:GetObject": arns(bucket, *a),
                                  "logs:CreateLogStream,logs:PutLogEvents": logs}

    second = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/b/model.pkl",
                          prepro_fn=rows_plus_one)
    b = (second.prepared["model_s3_key"], second.prepared["s3_prepro_fn_location"])
    assert set(a).isdisjoint(b)
    assert second.created["operation"] == "updated"
    # the role CloudFormation rewrote before updating the function: the new reads, the
    # previous configuration's reads (environments still on it), and nothing else
    assert role_policy(second) == {"s3:GetObject": arns(bucket, *a, *b),
                                   "logs:CreateLogStream,logs:PutLogEvents": logs}
    function = second.clients.lambda_.get_function_configuration(FunctionName=STACK)
    assert function["Environment"]["Variables"]["TDV_MODEL_KEY"] == b[0]

    # a retry of the same update computes the same parameters: nothing is sent
    again = second.deploy.create_stack(second.prepared, 1)
    assert again["operation"] == "unchanged"

    third = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/c/model.pkl",
                         prepro_fn=rows_times_two)
    c = (third.prepared["model_s3_key"], third.prepared["s3_prepro_fn_location"])
    assert role_policy(third) == {"s3:GetObject": arns(bucket, *b, *c),  # a is dropped
                                  "logs:CreateLogStream,logs:PutLogEvents": logs}


def test_a_code_only_update_keeps_what_the_role_already_grants(aws: LocalAws) -> None:
    """A key the update does not change keeps its previous key: the parameters of a
    repeated update are those the stack already has."""
    bucket = "tdv-role-scope"
    deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/a/model.pkl")
    second = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/b/model.pkl")
    stack = stacks.describe(second.clients.cloudformation, STACK)
    served = parameters_of(stack)
    assert served["PreviousModelKey"] == "models/a/model.pkl"
    assert served["PreviousPreproKey"] == served["PreproKey"]  # same pickle: none granted
    third = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/b/model.pkl",
                         stack_parameters={"MemorySize": 2048})
    assert third.created["operation"] == "updated"
    after = parameters_of(stacks.describe(third.clients.cloudformation, STACK))
    assert after["PreviousModelKey"] == "models/a/model.pkl"
    assert role_policy(third)["s3:GetObject"] == arns(bucket, "models/a/model.pkl",
                                                      "models/b/model.pkl",
                                                      served["PreproKey"])
