"""The shipped template lints clean and declares what the core passes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdv_airflow.core.resources import default_template_path
from tdv_airflow.core.template import (
    REQUIRED_OUTPUTS,
    REQUIRED_PARAMETERS,
    build_parameters,
    parse_template,
    read_template,
)
from tdv_airflow.exceptions import TemplateError


def test_cfn_lint_reports_nothing() -> None:
    from cfnlint.api import lint_all

    matches = lint_all(default_template_path().read_text())
    assert [str(m) for m in matches] == []


def test_cfn_lint_catches_a_broken_ref(tmp_path: Path) -> None:
    """The lint test can fail: a dangling Ref is reported."""
    from cfnlint.api import lint_all

    body = json.loads(default_template_path().read_text())
    body["Resources"]["LogGroup"]["Properties"]["RetentionInDays"] = {"Ref": "NoSuchParam"}
    assert lint_all(json.dumps(body))


def test_shipped_template_declares_everything() -> None:
    _, body = read_template(default_template_path())
    assert set(REQUIRED_PARAMETERS) <= set(body["Parameters"])
    assert set(REQUIRED_OUTPUTS) <= set(body["Outputs"])
    rest, http = body["Outputs"]["ApiEndpoint"]["Value"]["Fn::If"][1:]  # IsRestApi
    assert rest["Fn::Sub"] == ("https://${RestApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"
                               "/${StageName}/predict")
    assert http["Fn::Sub"] == "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}/predict"


def test_role_reads_only_this_deployments_objects() -> None:
    body = json.loads(default_template_path().read_text())
    statements = body["Resources"]["FunctionRole"]["Properties"]["Policies"][0][
        "PolicyDocument"]["Statement"]
    s3 = next(s for s in statements if s.get("Action") == "s3:GetObject")
    assert [r["Fn::Sub"] for r in s3["Resource"][:2]] == [
        "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${ModelKey}",
        "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${PreproKey}",
    ]
    # and the dependency bundle, only when there is one
    assert s3["Resource"][2:] == [{"Fn::If": ["HasDepsBundle", {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${ArtifactBucket}/${DepsBundleKey}"},
        {"Ref": "AWS::NoValue"}]}]
    # and the artifacts of the retained versions and, during and after an update, of the
    # previous configuration (RetainedArtifactArns, exact object ARNs computed by
    # tdv-airflow, only when there are any): exact keys again, no pattern
    retained = next(s for s in statements if s.get("Sid") == "ReadRetainedVersionsArtifacts")
    assert retained["Action"] == "s3:GetObject"
    assert retained["Resource"]["Fn::If"][:2] == ["HasRetainedArtifacts",
                                                  {"Ref": "RetainedArtifactArns"}]
    assert retained["Resource"]["Fn::If"][2] == s3["Resource"][:2]  # none: the current two
    assert "*" not in json.dumps(statements).replace(":*\"", "")


@pytest.mark.parametrize("text,match", [
    ("{not json", "neither valid JSON nor YAML"),
    ("[1, 2]", "not a CloudFormation template"),
    ("Resources: 3", "not a CloudFormation template"),
])
def test_broken_templates(text: str, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        parse_template(text.encode(), "t.json")


def test_yaml_short_forms_are_read() -> None:
    body = parse_template(b"Resources:\n  X:\n    Type: T\n    Properties:\n"
                          b"      A: !Ref P\n      B: !Sub '${P}-x'\n", "t.yaml")
    assert body["Resources"]["X"]["Properties"]["A"] == {"Ref": "P"}
    # the long forms, so that the body can be written back as JSON
    assert body["Resources"]["X"]["Properties"]["B"] == {"Fn::Sub": "${P}-x"}
    body = parse_template(b"Resources:\n  X:\n    Type: T\n    Properties:\n"
                          b"      A: !GetAtt F.Arn\n      B: !If [C, !Ref P, !Ref Q]\n",
                          "t.yaml")
    assert body["Resources"]["X"]["Properties"] == {
        "A": {"Fn::GetAtt": ["F", "Arn"]},
        "B": {"Fn::If": ["C", {"Ref": "P"}, {"Ref": "Q"}]}}


def test_template_missing_parameters(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"Resources": {"X": {"Type": "AWS::SNS::Topic"}}}))
    with pytest.raises(TemplateError, match="does not declare the parameters"):
        read_template(path)
    with pytest.raises(TemplateError, match="does not exist"):
        read_template(tmp_path / "missing.json")


def test_undeclared_parameter_is_refused() -> None:
    with pytest.raises(TemplateError, match=r"parameters \['Nope'\] are not declared"):
        build_parameters({"Parameters": {"A": {}}}, {"A": 1, "Nope": 2})
    assert build_parameters({"Parameters": {"A": {}, "L": {}}}, {"A": 1, "L": ["x", "y"]}) == [
        {"ParameterKey": "A", "ParameterValue": "1"},
        {"ParameterKey": "L", "ParameterValue": "x,y"},
    ]
