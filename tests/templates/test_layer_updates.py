"""A redeployment with other dependencies replaces the dependency layer, as on AWS: the
shipped template's ``DepsLayer`` takes a new ``DepsLayerKey`` as a new layer version,
``$LATEST`` lists it after the dill layer, and a version published before keeps (and
runs from) the one it was published with, although the stack's update deleted it
(``UpdateReplacePolicy`` Delete, the default; Lambda keeps a copy for the version).
On the emulator this needs ``tdv_airflow.local.fix_function_layers``.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path
from typing import Any

from tdv_airflow.core.layers import Dependencies
from tdv_airflow.core.resources import default_template_path
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.local.find import find_function
from tdv_airflow.local.fix_update_refs import names_used
from tdv_airflow.local.layout import lay_out
from testkit.deployed import DeployedStack, deploy_stack
from testkit.models import scaled_model_bytes

BUCKET = "tdv-layer-updates"
STACK = "tdv-layer-updates"
PROBE = "python/tdv_deps_probe.py"


def deps_zip(path: Path, text: str) -> Dependencies:
    """A ready-made dependency layer whose probe module holds ``text``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(PROBE, text)
    path.write_bytes(buf.getvalue())
    return Dependencies(zip_path=str(path))


def layer_arns(deployed: DeployedStack, qualifier: str | None = None) -> list[str]:
    kw = {"Qualifier": qualifier} if qualifier else {}
    config = deployed.clients.lambda_.get_function_configuration(FunctionName=STACK, **kw)
    return [layer["Arn"] for layer in config.get("Layers") or []]


def content_hex(deployed: DeployedStack, arn: str) -> str:
    layer, _, number = arn.rpartition(":")  # (moto answers GetLayerVersionByArn with a 500)
    version = deployed.clients.lambda_.get_layer_version(LayerName=layer,
                                                         VersionNumber=int(number))
    return base64.b64decode(version["Content"]["CodeSha256"]).hex()


def probe(deployed: DeployedStack, workdir: Path, qualifier: str | None = None) -> str:
    """The probe module the function (or a version) runs with, laid out from its layers."""
    function = find_function(deployed.clients, STACK, qualifier)
    return (lay_out(deployed.clients, function, workdir).opt_dir / PROBE).read_text()


def test_a_new_dependency_layer_replaces_the_old_one(aws: LocalAws, tmp_path: Path) -> None:
    deps_a_zip = deps_zip(tmp_path / "a.zip", "V = 'a'\n")
    first = deploy_stack(aws.endpoint_url, BUCKET, STACK, dependencies=deps_a_zip)
    dill, deps_a = layer_arns(first)
    assert first.endpoint["live"]["version"] == "1"

    second = deploy_stack(aws.endpoint_url, BUCKET, STACK,
                          dependencies=deps_zip(tmp_path / "b.zip", "V = 'b'\n"))
    assert second.endpoint["stack_status"] == "UPDATE_COMPLETE"
    dill_now, deps_b = layer_arns(second)
    assert dill_now == dill and deps_b != deps_a  # the dill layer did not change
    assert deps_b.rsplit(":", 1) == [deps_a.rsplit(":", 1)[0], "2"]  # its next version
    assert content_hex(second, deps_b) == second.prepared["sha256"]["deps_layer"]
    assert probe(second, tmp_path / "run") == "V = 'b'\n"
    # Version 1 keeps the layer version it was published with, and runs from it.
    assert layer_arns(second, "1") == [dill, deps_a]
    assert probe(second, tmp_path / "run", "1") == "V = 'a'\n"

    # Back to the first layer (with another model: the same deployment as version 1 would
    # reuse version 1 and leave the stack as it is).
    third = deploy_stack(aws.endpoint_url, BUCKET, STACK, dependencies=deps_a_zip,
                         model=scaled_model_bytes(2.0))
    assert third.created["operation"] == "updated"
    deps_again = layer_arns(third)[1]
    assert deps_again not in (deps_a, deps_b) and deps_again.endswith(":3")
    assert content_hex(third, deps_again) == first.prepared["sha256"]["deps_layer"]
    assert probe(third, tmp_path / "run") == "V = 'a'\n"


def test_the_template_lists_each_layer_before_what_refers_to_it() -> None:
    """The emulator updates a stack's resources in the template's order; CloudFormation
    updates a replaced layer's dependents after it."""
    body: dict[str, Any] = json.loads(default_template_path().read_text())
    resources = body["Resources"]
    order = list(resources)
    layers = {name for name, r in resources.items() if r["Type"] == "AWS::Lambda::LayerVersion"}
    assert layers
    for name, resource in resources.items():
        for layer in layers & names_used(resource, body.get("Conditions") or {}):
            assert order.index(layer) < order.index(name), (layer, name)
