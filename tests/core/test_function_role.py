"""The function's role: on the (faithful) emulator, during and after an update it reads the
previous configuration's model and pickle as well as the new ones, and nothing else; the
next update drops the older ones; a retried update changes nothing; the artifacts of
retained versions (``RetainedArtifactArns``) stay readable. Without AWS: how
:mod:`tdv_airflow.core.function_scope` computes that parameter."""

from __future__ import annotations

from typing import Any

import pytest

from tdv_airflow.core import stacks, versions
from tdv_airflow.core.function_scope import (
    PARAMETER_VALUE_LIMIT,
    object_arn,
    parameters_of,
    partition_of,
    retained_arns,
    scope_parameters,
)
from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.local.aws import LocalAws
from testkit.deployed import DeployedStack, deploy_stack

STACK = "tdv-role-scope"
READ = "s3:GetObject"
LOGS = "logs:CreateLogStream,logs:PutLogEvents"


def rows_plus_one(payload: dict[str, Any]) -> list[list[float]]:
    """Another preprocessing function (another pickle, another key)."""
    return [[float(v) + 1 for v in row] for row in payload["rows"]]


def rows_times_two(payload: dict[str, Any]) -> list[list[float]]:
    """A third one."""
    return [[float(v) * 2 for v in row] for row in payload["rows"]]


def role_policy(deployed: DeployedStack) -> dict[str, Any]:
    """The function role's inline policy: ``{action: sorted resources}`` over its
    statements (the resources of statements with the same action merged)."""
    cfn = deployed.session.client("cloudformation", endpoint_url=deployed.auth.endpoint_url)
    iam = deployed.session.client("iam", endpoint_url=deployed.auth.endpoint_url)
    role = next(r["PhysicalResourceId"] for r in
                cfn.describe_stack_resources(StackName=STACK)["StackResources"]
                if r["LogicalResourceId"] == "FunctionRole")
    names = iam.list_role_policies(RoleName=role)["PolicyNames"]
    assert names == ["read-artifacts-write-logs"]
    document = iam.get_role_policy(RoleName=role, PolicyName=names[0])["PolicyDocument"]
    out: dict[str, set[str]] = {}
    for statement in document["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) \
            else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) \
            else [statement["Resource"]]
        out.setdefault(",".join(actions), set()).update(resources)
    return {action: sorted(resources) for action, resources in out.items()}


def arns(bucket: str, *keys: str) -> list[str]:
    return sorted({f"arn:aws:s3:::{bucket}/{key}" for key in keys})


def test_an_update_keeps_the_previous_configuration_readable_and_nothing_else(
        aws: LocalAws) -> None:
    bucket = "tdv-role-scope"
    first = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/a/model.pkl")
    a = (first.prepared["model_s3_key"], first.prepared["s3_prepro_fn_location"])
    logs = role_policy(first)[LOGS]
    assert role_policy(first) == {READ: arns(bucket, *a), LOGS: logs}

    second = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/b/model.pkl",
                          prepro_fn=rows_plus_one)
    b = (second.prepared["model_s3_key"], second.prepared["s3_prepro_fn_location"])
    assert set(a).isdisjoint(b)
    assert second.created["operation"] == "updated"
    # the role CloudFormation rewrote before updating the function: the new reads, the
    # previous configuration's reads (environments still on it), and nothing else
    assert role_policy(second) == {READ: arns(bucket, *a, *b), LOGS: logs}
    function = second.clients.lambda_.get_function_configuration(FunctionName=STACK)
    assert function["Environment"]["Variables"]["TDV_MODEL_KEY"] == b[0]

    # a retry of the same update computes the same parameters: nothing is sent
    again = second.deploy.create_stack(second.prepared, 1)
    assert again["operation"] == "unchanged"

    third = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/c/model.pkl",
                         prepro_fn=rows_times_two)
    c = (third.prepared["model_s3_key"], third.prepared["s3_prepro_fn_location"])
    # version 1 (model a) is still published, so a rollback to it must read a: the role
    # follows retention, not only the newest keys
    assert role_policy(third) == {READ: arns(bucket, *a, *b, *c), LOGS: logs}
    lam = third.clients.lambda_
    assert versions.prune(lam, STACK, 1, {"3", "2"}) == ["1"]  # live 3, previous 2
    # a retried deployment changes nothing (the grant narrows with the next new model)
    assert third.deploy.create_stack(third.prepared, 1)["operation"] == "unchanged"
    fourth = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/d/model.pkl",
                          prepro_fn=rows_times_two)
    d = (fourth.prepared["model_s3_key"], fourth.prepared["s3_prepro_fn_location"])
    assert role_policy(fourth) == {READ: arns(bucket, *b, *c, *d), LOGS: logs}  # a dropped


def test_a_code_only_update_keeps_what_the_role_already_grants(aws: LocalAws) -> None:
    """An update that changes neither key keeps what the stack grants: the parameters of
    a repeated update are those the stack already has."""
    bucket = "tdv-role-scope"
    deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/a/model.pkl")
    second = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/b/model.pkl")
    stack = stacks.describe(second.clients.cloudformation, STACK)
    served = parameters_of(stack)
    # the previous model only: the pickle is the same, so none is granted for it
    assert served["RetainedArtifactArns"] == f"arn:aws:s3:::{bucket}/models/a/model.pkl"
    third = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/b/model.pkl",
                         stack_parameters={"MemorySize": 2048})
    assert third.created["operation"] == "updated"
    after = parameters_of(stacks.describe(third.clients.cloudformation, STACK))
    assert after["RetainedArtifactArns"] == f"arn:aws:s3:::{bucket}/models/a/model.pkl"
    assert role_policy(third)[READ] == arns(bucket, "models/a/model.pkl",
                                            "models/b/model.pkl", served["PreproKey"])


def test_the_role_reads_every_retained_artifact_and_only_those(aws: LocalAws) -> None:
    """What ``RetainedArtifactArns`` lists (the artifacts of retained versions) is what the
    role reads besides the served two: the shipped template on the emulator."""
    bucket = "tdv-role-scope"
    kept = [object_arn(bucket, "models/v1/model.pkl"), object_arn(bucket, "models/v2/a,b.pkl")]
    deployed = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/v3/model.pkl",
                            stack_parameters={"RetainedArtifactArns": ",".join(kept)})
    served = (deployed.prepared["model_s3_key"], deployed.prepared["s3_prepro_fn_location"])
    assert role_policy(deployed)[READ] == sorted({*arns(bucket, *served), *kept})
    assert f"arn:aws:s3:::{bucket}/models/v2/a?b.pkl" in role_policy(deployed)[READ]
    # an empty list grants nothing more (the statement names the served two again)
    emptied = deploy_stack(aws.endpoint_url, bucket, STACK, model_key="models/v3/model.pkl",
                           stack_parameters={"RetainedArtifactArns": ""})
    assert emptied.created["operation"] == "updated"
    assert role_policy(emptied)[READ] == arns(bucket, *served)


# ------------------------------------------------------ RetainedArtifactArns, computed

RESPONSE = {"bucket": "bkt", "model_s3_key": "m/new.pkl", "s3_prepro_fn_location": "p/new",
            "template_parameters": ["ModelKey", "PreproKey", "RetainedArtifactArns",
                                    "Architecture", "ArtifactKmsKeyArn"]}


def described(**parameters: str) -> dict[str, Any]:
    """A ``describe_stacks`` entry with these parameters."""
    return {"StackName": "tdv-x", "StackStatus": "UPDATE_COMPLETE",
            "Parameters": [{"ParameterKey": k, "ParameterValue": v}
                           for k, v in parameters.items()]}


def retained_value(stack: dict[str, Any] | None = None, retained: Any = (),
                   region: str = "us-east-1") -> str:
    return scope_parameters(RESPONSE, stack, retained, region)["RetainedArtifactArns"]


@pytest.mark.parametrize("region,partition", [
    ("us-east-1", "aws"), ("eu-central-2", "aws"), ("cn-north-1", "aws-cn"),
    ("cn-northwest-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov"),
])
def test_the_partition_comes_from_the_region(region: str, partition: str) -> None:
    assert partition_of(region) == partition
    assert retained_value(retained=[("bkt", "m/old.pkl")], region=region) == \
        f"arn:{partition}:s3:::bkt/m/old.pkl"


def test_retained_artifacts_sorted_unique_without_the_served_ones() -> None:
    retained = [("bkt", "m/v2.pkl"), ("bkt", "p/old"), ("bkt", "m/v1.pkl"),
                ("bkt", "m/v2.pkl"), ("bkt", "m/new.pkl"), ("bkt", "p/new"),
                ("other", "m/new.pkl")]
    assert retained_value(retained=retained).split(",") == [
        "arn:aws:s3:::bkt/m/v1.pkl", "arn:aws:s3:::bkt/m/v2.pkl", "arn:aws:s3:::bkt/p/old",
        "arn:aws:s3:::other/m/new.pkl"]  # the same key in another bucket is another object
    assert retained_value() == ""  # create, nothing retained: nothing more


@pytest.mark.parametrize("served,expected", [
    # both change: the stack's two (the update window), in the stack's own bucket
    ({"ArtifactBucket": "old-bkt", "ModelKey": "m/old.pkl", "PreproKey": "p/old"},
     ["arn:aws:s3:::old-bkt/m/old.pkl", "arn:aws:s3:::old-bkt/p/old"]),
    # only the model changes: the old model; what the stack granted before is dropped
    ({"ArtifactBucket": "bkt", "ModelKey": "m/old.pkl", "PreproKey": "p/new",
      "RetainedArtifactArns": "arn:aws:s3:::bkt/m/older.pkl"},
     ["arn:aws:s3:::bkt/m/old.pkl"]),
    # neither changes (a retry, a settings change): what the stack grants stays
    ({"ArtifactBucket": "bkt", "ModelKey": "m/new.pkl", "PreproKey": "p/new",
      "RetainedArtifactArns": "arn:aws:s3:::bkt/m/old.pkl,arn:aws:s3:::bkt/p/old"},
     ["arn:aws:s3:::bkt/m/old.pkl", "arn:aws:s3:::bkt/p/old"]),
    # a stack made by an earlier template (PreviousModelKey, no RetainedArtifactArns)
    ({"ArtifactBucket": "bkt", "ModelKey": "m/new.pkl", "PreproKey": "p/new",
      "PreviousModelKey": "m/older.pkl"}, []),
])
def test_the_update_window_comes_from_the_stack(served: dict[str, str],
                                                expected: list[str]) -> None:
    value = retained_value(described(**served))
    assert (value.split(",") if value else []) == expected
    # a retry once the stack has the new keys and this value computes the same value
    after = {**served, "ModelKey": "m/new.pkl", "PreproKey": "p/new",
             "RetainedArtifactArns": value}
    assert retained_value(described(**after)) == value


def test_the_window_and_the_retained_versions_together() -> None:
    stack = described(ArtifactBucket="bkt", ModelKey="m/old.pkl", PreproKey="p/new")
    assert retained_value(stack, [("bkt", "m/v1.pkl"), ("bkt", "m/old.pkl")]).split(",") == \
        ["arn:aws:s3:::bkt/m/old.pkl", "arn:aws:s3:::bkt/m/v1.pkl"]
    assert retained_arns(stack, "bkt", {"ModelKey": "m/old.pkl", "PreproKey": "p/new"},
                         [("bkt", "m/old.pkl")]) == []  # a rollback to the old keys


@pytest.mark.parametrize("key,arn", [
    ("m/a,b.pkl", "arn:aws:s3:::bkt/m/a?b.pkl"),  # the list cannot hold ','
    ("m/a*b.pkl", "arn:aws:s3:::bkt/m/a${*}b.pkl"),  # a literal '*', not a pattern
    ("m/a?b.pkl", "arn:aws:s3:::bkt/m/a${?}b.pkl"),
    ("m/${aws:username}.pkl", "arn:aws:s3:::bkt/m/${$}{aws:username}.pkl"),
    ("m/ü ñ.pkl", "arn:aws:s3:::bkt/m/ü ñ.pkl"),
])
def test_keys_become_exact_object_arns(key: str, arn: str) -> None:
    assert object_arn("bkt", key) == arn
    assert retained_value(retained=[("bkt", key)]) == arn
    assert "," not in retained_value(retained=[("bkt", key), ("bkt", "x,y")]).replace(
        ",arn:", "|")


def test_a_list_beyond_cloudformation_s_limit_is_refused() -> None:
    key = "m/" + "k" * 90
    arn_size = len(object_arn("bkt", key + "00"))
    fits = (PARAMETER_VALUE_LIMIT + 1) // (arn_size + 1)
    at_limit = [("bkt", f"{key}{n:02d}") for n in range(fits)]
    assert len(retained_value(retained=at_limit).encode()) <= PARAMETER_VALUE_LIMIT
    over = [*at_limit, ("bkt", f"{key}{fits:02d}")]
    with pytest.raises(InvalidInputError,
                       match=rf"{fits + 1} retained artifacts \(RetainedArtifactArns: "
                             rf"{(fits + 1) * (arn_size + 1) - 1} bytes\).*4096-byte"):
        retained_value(retained=over)


def test_a_template_without_the_parameter_gets_none() -> None:
    legacy = {**RESPONSE, "template_parameters": ["ModelKey", "PreproKey"]}
    assert scope_parameters(legacy, None, [("bkt", "m/v1.pkl")]) == {}


def test_a_dependency_bundle_is_served_retained_and_kept_through_the_update_window() -> None:
    from tdv_airflow.core.versions import VersionRecord

    record = VersionRecord(version="3", identity="i", run_id=None, published_at=None,
                           environment={"TDV_BUCKET": "bkt", "TDV_MODEL_KEY": "m/v3.pkl",
                                        "TDV_PREPRO_KEY": "p/v3",
                                        "TDV_DEPS_BUNDLE_KEY": "b/old.zip"})
    assert record.artifacts() == [("bkt", "m/v3.pkl"), ("bkt", "p/v3"), ("bkt", "b/old.zip")]
    # the stack served an old bundle; this update brings a new one: the old stays readable
    stack = described(ArtifactBucket="bkt", ModelKey="m/new.pkl", PreproKey="p/new",
                      DepsBundleKey="b/old.zip")
    new = {"ModelKey": "m/new.pkl", "PreproKey": "p/new", "DepsBundleKey": "b/new.zip"}
    assert retained_arns(stack, "bkt", new) == ["arn:aws:s3:::bkt/b/old.zip"]
    # the new bundle is the served one (ReadThisDeploymentsArtifacts), never listed again
    assert retained_arns(stack, "bkt", new, [("bkt", "b/new.zip")]) == [
        "arn:aws:s3:::bkt/b/old.zip"]
    # back to a layer (no bundle): the old bundle stays readable through the window
    assert retained_arns(stack, "bkt", {**new, "DepsBundleKey": ""}) == [
        "arn:aws:s3:::bkt/b/old.zip"]
    response = {**RESPONSE, "deps_bundle": {"key": "b/old.zip"}}
    assert scope_parameters(response, stack, [("bkt", "b/old.zip")])[
        "RetainedArtifactArns"] == ""  # the same bundle again: served, not retained
