"""An arm64 dependency layer makes an arm64 function with arm64 layers: the template
and the core agree (finding 7 of issue 11), on the template and on the emulator."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core.layers import Dependencies
from tdv_airflow.core.resources import default_template_path
from tdv_airflow.local.aws import LocalAws
from testkit.deployed import deploy_stack
from testkit.template_checks import evaluate


def template() -> dict[str, Any]:
    body: dict[str, Any] = json.loads(default_template_path().read_text())
    return body


@pytest.mark.parametrize("given,expected", [(None, "x86_64"), ("arm64", "arm64"),
                                            ("x86_64", "x86_64")])
def test_the_function_and_both_layers_take_the_architecture(given: str | None,
                                                            expected: str) -> None:
    body = template()
    values = {"Architecture": given} if given else {}
    resources = body["Resources"]
    function = resources["PredictFunction"]["Properties"]["Architectures"]
    assert [evaluate(body, a, values) for a in function] == [expected]
    for layer in ("DillLayer", "DepsLayer"):
        listed = resources[layer]["Properties"]["CompatibleArchitectures"]
        assert [evaluate(body, a, values) for a in listed] == [expected], layer
    assert body["Parameters"]["Architecture"]["AllowedValues"] == ["x86_64", "arm64"]


def deps_zip(path: Path) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("python/tdv_arm_probe.py", "MACHINE = 'aarch64'\n")
    path.write_bytes(buf.getvalue())
    return path


def test_an_arm64_layer_deploys_an_arm64_function_with_arm64_layers(
        aws: LocalAws, tmp_path: Path) -> None:
    deps = Dependencies(zip_path=str(deps_zip(tmp_path / "deps.zip")), architecture="arm64")
    deployed = deploy_stack(aws.endpoint_url, "tdv-arch", "tdv-arm", dependencies=deps)
    assert deployed.prepared["architecture"] == "arm64"
    lambda_ = deployed.clients.lambda_
    function = lambda_.get_function_configuration(FunctionName="tdv-arm")
    assert function["Architectures"] == ["arm64"]
    # (moto names a stack's layers after their logical ids, not their LayerName)
    layers = [layer["LatestMatchingVersion"] for layer in lambda_.list_layers()["Layers"]]
    assert [version.get("CompatibleArchitectures") for version in layers] \
        == [["arm64"], ["arm64"]]  # the dill layer and the dependency layer


def test_without_dependencies_the_function_stays_x86(aws: LocalAws) -> None:
    deployed = deploy_stack(aws.endpoint_url, "tdv-arch", "tdv-x86")
    assert deployed.prepared["architecture"] == "x86_64"
    function = deployed.clients.lambda_.get_function_configuration(FunctionName="tdv-x86")
    assert function["Architectures"] == ["x86_64"]
