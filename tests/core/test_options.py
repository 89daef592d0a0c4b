"""The security options' validation and mapping, and the published policy files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow import Deploy
from tdv_airflow.core import iam as security
from tdv_airflow.core.deployment import stack_parameters
from tdv_airflow.core.validation import (
    check_capacity_parameters,
    check_endpoint_auth,
    check_role_arn,
)
from tdv_airflow.exceptions import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]
RESPONSE: dict[str, Any] = {
    "bucket": "b-1", "model_s3_key": "m.pkl", "s3_prepro_fn_location": "p", "s3_lbd_key": "c",
    "s3_layer_key": "l", "runtime": "python3.11", "python_version": "3.11",
    "dill_version": "0.3.9",
    "sha256": {"model": "0" * 64, "prepro_fn": "1" * 64, "lambda_code": "2" * 64,
               "layer": "3" * 64},
    "template_parameters": ["ArtifactBucket", "ModelKey", "ModelSha256", "PreproKey",
                            "PreproSha256", "CodeKey", "CodeSha256", "LayerKey",
                            "LayerSha256", "Runtime", "PicklePythonVersion", "DillVersion",
                            "FunctionName", "EndpointAuth"],
}


def params(response: dict[str, Any] = RESPONSE, **kw: Any) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"]
            for p in stack_parameters(response, "tdv-x", **kw)}


@pytest.mark.parametrize("given,parameter", [
    ("iam", "AWS_IAM"), ("api_key", "API_KEY"), ("none", "NONE"), ("AWS_IAM", "AWS_IAM"),
    ("Api_Key", "API_KEY"),
])
def test_endpoint_auth_becomes_the_parameter(given: str, parameter: str) -> None:
    assert params(endpoint_auth=given)["EndpointAuth"] == parameter


def test_iam_is_the_default_and_stack_parameters_win() -> None:
    assert params()["EndpointAuth"] == "AWS_IAM"
    assert params(extra={"EndpointAuth": "NONE"})["EndpointAuth"] == "NONE"


def test_a_template_without_endpoint_auth() -> None:
    legacy = {**RESPONSE, "template_parameters": RESPONSE["template_parameters"][:-1]}
    assert "EndpointAuth" not in params(legacy)
    with pytest.raises(InvalidInputError, match="declares the parameter 'EndpointAuth'"):
        params(legacy, endpoint_auth="api_key")


@pytest.mark.parametrize("bad", ["", "public", "key", None, 3])
def test_unknown_modes_are_refused(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="expected 'iam'.*'api_key'.*'none'"):
        check_endpoint_auth(bad)


@pytest.mark.parametrize("arn", [
    "arn:aws:iam::123456789012:role/tdv-cfn-deployer",
    "arn:aws-cn:iam::123456789012:role/service/tdv_deployer+x=y,z.a@b-c",
    "arn:aws-us-gov:iam::123456789012:role/a/b/c/deployer",
])
def test_role_arns_are_accepted(arn: str) -> None:
    assert check_role_arn(arn) == arn
    assert check_role_arn(None) is None


@pytest.mark.parametrize("bad", [
    "tdv-cfn-deployer", "arn:aws:iam::123456789012:user/alice",
    "arn:aws:iam::12345:role/x", "arn:aws:sts::123456789012:assumed-role/x/y",
    "arn:aws:iam::123456789012:role/", 42,
])
def test_bad_role_arns_are_refused_before_anything_happens(bad: Any) -> None:
    with pytest.raises(InvalidInputError, match="invalid role_arn .*docs/iam.md"):
        check_role_arn(bad)
    with pytest.raises(InvalidInputError, match="invalid role_arn"):
        Deploy("b-1", "m.pkl", len, None, stack_name="tdv-x", role_arn=bad)


@pytest.mark.parametrize("name,build", [
    ("airflow-identity-policy.json", security.airflow_identity_policy),
    ("cloudformation-service-role-policy.json", security.cloudformation_service_role_policy),
    ("cloudformation-service-role-trust-policy.json",
     security.cloudformation_service_role_trust_policy),
])
def test_the_published_policies_are_the_code_s(name: str, build: Any) -> None:
    published = json.loads((ROOT / "docs" / name).read_text())
    assert published == build()
    assert name in (ROOT / "docs" / "iam.md").read_text()


def test_no_published_statement_allows_everything() -> None:
    for build in (security.airflow_identity_policy,
                  security.cloudformation_service_role_policy):
        for statement in build()["Statement"]:
            if statement["Sid"] in security.UNSCOPED_STATEMENTS:  # argued in docs/iam.md
                assert tuple(statement["Action"]) == security.UNSCOPED_STATEMENTS[
                    statement["Sid"]]
                continue
            assert statement["Resource"] != "*" and "*" not in statement["Resource"]
            assert not any(a.endswith(":*") or a == "*" for a in statement["Action"])


# ----------------------------- architecture, KMS key, retained artifacts (issues 11, 12)

SCOPED = {**RESPONSE, "architecture": "arm64",
          "kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/1dca5b89-ed7d-4d21",
          "template_parameters": [*RESPONSE["template_parameters"], "Architecture",
                                  "ArtifactKmsKeyArn", "RetainedArtifactArns"]}


def described(**parameters: str) -> dict[str, Any]:
    """A ``describe_stacks`` entry with these parameters."""
    return {"StackName": "tdv-x", "StackStatus": "UPDATE_COMPLETE",
            "Parameters": [{"ParameterKey": k, "ParameterValue": v}
                           for k, v in parameters.items()]}


def test_the_architecture_and_the_kms_key_become_parameters() -> None:
    values = params(SCOPED)
    assert (values["Architecture"], values["ArtifactKmsKeyArn"]) == (
        "arm64", "arn:aws:kms:eu-west-1:123456789012:key/1dca5b89-ed7d-4d21")
    plain = params({**SCOPED, "architecture": "x86_64", "kms_key_arn": None})
    assert (plain["Architecture"], plain["ArtifactKmsKeyArn"]) == ("x86_64", "")


@pytest.mark.parametrize("change,parameter", [
    ({"architecture": "arm64"}, "Architecture"),
    ({"kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/k"}, "ArtifactKmsKeyArn"),
])
def test_a_template_that_cannot_take_them_is_refused(change: dict[str, Any],
                                                     parameter: str) -> None:
    legacy = {**RESPONSE, **change}
    with pytest.raises(InvalidInputError, match=f"does not declare the parameter '{parameter}'"):
        params(legacy)
    assert not {"Architecture", "ArtifactKmsKeyArn"} & set(params(RESPONSE))  # x86, no KMS


@pytest.mark.parametrize("served,previous", [
    (None, ()),  # create: nothing more than the current keys
    ({"ModelKey": "old.pkl", "PreproKey": "old-p"}, ("old.pkl", "old-p")),  # both change
    ({"ModelKey": "m.pkl", "PreproKey": "old-p",
      "RetainedArtifactArns": "arn:aws:s3:::b-1/older.pkl"},
     ("old-p",)),  # only the pickle changes: its previous key (the update window)
    ({"ModelKey": "m.pkl", "PreproKey": "p",
      "RetainedArtifactArns": "arn:aws:s3:::b-1/older.pkl"},
     ("older.pkl",)),  # nothing changes (a retry): what the stack grants stays
    ({"ModelKey": "m.pkl", "PreproKey": "p"}, ()),  # a stack without them
])
def test_previous_keys_come_from_the_stack(served: dict[str, str] | None,
                                           previous: tuple[str, ...]) -> None:
    stack = described(**served) if served is not None else None
    values = {p["ParameterKey"]: p["ParameterValue"]
              for p in stack_parameters(SCOPED, "tdv-x", stack=stack)}
    assert values["RetainedArtifactArns"] == ",".join(
        sorted(f"arn:aws:s3:::b-1/{key}" for key in previous))


@pytest.mark.parametrize("parameters", [
    {"ReservedConcurrency": 0}, {"ReservedConcurrency": "0"}, {"ReservedConcurrency": -2},
    {"ReservedConcurrency": 2.5}, {"ThrottlingBurstLimit": 0}, {"ThrottlingRateLimit": 0},
    {"ThrottlingRateLimit": "0.5"}, {"UsagePlanBurstLimit": 0}, {"UsagePlanRateLimit": 0},
    {"UsagePlanQuotaLimit": 0}, {"ThrottlingBurstLimit": "many"},
    {"ReservedConcurrency": True},
])
def test_zero_capacity_is_refused_before_anything_is_sent(parameters: dict[str, Any]) -> None:
    from tdv_airflow.core.clients import AwsClients
    from tdv_airflow.core.deployment import create_stack

    name, value = next(iter(parameters.items()))
    expected = rf"invalid stack parameter {name}={value!r}: expected"
    with pytest.raises(InvalidInputError, match=expected.replace("(", r"\(")):
        check_capacity_parameters(parameters)

    def no_aws(service: str) -> Any:
        raise AssertionError(f"{service} was called")

    with pytest.raises(InvalidInputError, match=f"invalid stack parameter {name}"):
        create_stack(AwsClients(no_aws, "us-east-1"), RESPONSE, "tdv-x", parameters)
    with pytest.raises(InvalidInputError, match=f"invalid stack parameter {name}"):
        Deploy("b-1", "m.pkl", len, None, stack_name="tdv-x", stack_parameters=parameters)


@pytest.mark.parametrize("parameters", [
    None, {}, {"ReservedConcurrency": -1}, {"ReservedConcurrency": "5"},
    {"ThrottlingBurstLimit": 1, "ThrottlingRateLimit": 2.5}, {"StageName": "v1"},
])
def test_capacity_that_lets_traffic_through_is_accepted(parameters: Any) -> None:
    check_capacity_parameters(parameters)


def test_the_template_refuses_zero_capacity_too() -> None:
    body = json.loads((ROOT / "templates" / "stack_template.json").read_text())
    for name in ("ThrottlingBurstLimit", "ThrottlingRateLimit", "UsagePlanBurstLimit",
                 "UsagePlanRateLimit", "UsagePlanQuotaLimit"):
        assert body["Parameters"][name]["MinValue"] == 1, name
    reserved = body["Parameters"]["ReservedConcurrency"]["Description"]
    assert "100" in reserved and "unreserved" in reserved and "0 " in reserved
