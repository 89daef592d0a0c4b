"""The function permissions boundary: published, on every role the template creates, and
the ``permissions_boundary_arn`` option that fills the template's ``PermissionsBoundaryArn``
(checked before anything is created in AWS). That the published service role refuses a
role without it is shown on the IAM-enforcing emulator in ``test_iam.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core import deployment
from tdv_airflow.core.iam import BOUNDARY_PARAMETER, function_permissions_boundary
from tdv_airflow.exceptions import InvalidInputError

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"


def test_the_published_boundary_is_the_code_s() -> None:
    published = json.loads((ROOT / "docs" / "function-permissions-boundary.json").read_text())
    assert published == function_permissions_boundary()
    assert "function-permissions-boundary.json" in (ROOT / "docs" / "iam.md").read_text()


def test_every_role_of_the_template_is_bounded() -> None:
    template = json.loads((ROOT / "templates" / "stack_template.json").read_text())
    assert BOUNDARY_PARAMETER in template["Parameters"]
    roles = {name: r for name, r in template["Resources"].items()
             if r["Type"] == "AWS::IAM::Role"}
    assert roles
    for role in roles.values():
        assert role["Properties"]["PermissionsBoundary"] == {"Fn::If": [
            "HasPermissionsBoundary", {"Ref": BOUNDARY_PARAMETER}, {"Ref": "AWS::NoValue"}]}


RESPONSE: dict[str, Any] = {
    "bucket": "b-1", "model_s3_key": "m.pkl", "s3_prepro_fn_location": "p", "s3_lbd_key": "c",
    "s3_layer_key": "l", "runtime": "python3.11", "python_version": "3.11",
    "dill_version": "0.3.9", "url_s3_stack_template": "https://b-1.s3.amazonaws.com/t",
    "sha256": {
        "model": "0" * 64, "prepro_fn": "1" * 64, "lambda_code": "2" * 64, "layer": "3" * 64},
    "template_parameters": ["ArtifactBucket", "ModelKey", "ModelSha256", "PreproKey",
                            "PreproSha256", "CodeKey", "CodeSha256", "LayerKey",
                            "LayerSha256", "Runtime", "PicklePythonVersion", "DillVersion",
                            "FunctionName", BOUNDARY_PARAMETER],
}
BOUNDARY = f"arn:aws:iam::{ACCOUNT}:policy/tdv-function-boundary"


def test_the_boundary_option_becomes_the_parameter() -> None:
    params = {p["ParameterKey"]: p["ParameterValue"] for p in deployment.stack_parameters(
        RESPONSE, "tdv-x", permissions_boundary_arn=BOUNDARY)}
    assert params[BOUNDARY_PARAMETER] == BOUNDARY
    assert BOUNDARY_PARAMETER not in {
        p["ParameterKey"] for p in deployment.stack_parameters(RESPONSE, "tdv-x")}
    legacy = {**RESPONSE, "template_parameters": RESPONSE["template_parameters"][:-1]}
    with pytest.raises(InvalidInputError, match="declares the parameter 'PermissionsBoundary"):
        deployment.stack_parameters(legacy, "tdv-x", permissions_boundary_arn=BOUNDARY)


@pytest.mark.parametrize("bad", [
    "tdv-function-boundary", f"arn:aws:iam::{ACCOUNT}:role/tdv-function-boundary",
    "arn:aws:iam::123:policy/x", f"arn:aws:iam::{ACCOUNT}:policy/", 7,
])
def test_a_bad_boundary_is_refused_before_anything_happens(bad: Any) -> None:
    class NoAws:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"AWS was called ({name}) before the boundary was checked")

    with pytest.raises(InvalidInputError, match="invalid permissions_boundary_arn .*policy/"):
        deployment.create_stack(NoAws(), RESPONSE, "tdv-x",  # type: ignore[arg-type]
                                permissions_boundary_arn=bad)
    with pytest.raises(InvalidInputError, match=f"invalid permissions_boundary_arn {bad!r}"):
        deployment.stack_parameters(RESPONSE, "tdv-x", {BOUNDARY_PARAMETER: bad})
