"""The dependency bundle's packaging choice, limits and stack parameters (core.bundle)."""

from __future__ import annotations

import io
import logging
import zipfile
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.core import bundle, deployment, layers
from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.core.clients import AwsClients
from tdv_airflow.exceptions import InvalidInputError
from tests.core.test_layers import big_zip, no_aws, prepro

DECLARED = {"DepsLayerKey": {}, "DepsBundleKey": {}, "DepsBundleSha256": {}}
MB = 1_000_000


def layer_of(size: int) -> Artifact:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("python/big.bin", "w", force_zip64=True) as out:
            for _ in range(size // MB):
                out.write(bytes(MB))
    return Artifact(layers.DEPS_LAYER_KIND, "deps_layer.zip", buf.getvalue())


SMALL, BIG = layer_of(10 * MB), layer_of(262 * MB)
CODE = {"lambda_code": 40_000, "layer": 1_300_000}


def test_auto_is_a_layer_within_the_limit_and_a_bundle_past_it() -> None:
    small = bundle.choose("auto", SMALL, CODE, DECLARED)
    assert small.choice == "layer" and small.artifact is SMALL and small.size is None
    assert "within the limit" in small.reason and "dependency layer 10.0 MB" in small.reason
    big = bundle.choose("auto", BIG, CODE, DECLARED)
    assert big.choice == "bundle" and big.artifact is not None
    assert big.artifact.kind == "deps_bundle" and big.artifact.data == BIG.data  # same bytes
    assert big.size is not None and big.size.unzipped == 262 * MB and big.size.files == 1
    assert "code plus layers would be 263.3 MB" in big.reason
    assert f"needs {big.size.ephemeral_mb} MB of ephemeral storage" in big.reason
    # 262 MB + the zip + a block + 64 MiB of headroom is 326 MiB: Lambda's minimum, 512
    assert big.size.ephemeral_mb == 512
    assert bundle.BundleSize(len(BIG.data), 600 * MB, 1).ephemeral_mb == -(
        -(600 * MB + len(BIG.data) + 4096 + 64 * 2**20) // 2**20)


def test_asked_packaging_wins_and_auto_without_bundle_parameters_is_a_layer() -> None:
    assert bundle.choose("bundle", SMALL, CODE, DECLARED).choice == "bundle"
    assert bundle.choose("layer", BIG, CODE, DECLARED).choice == "layer"
    no_bundle = bundle.choose("auto", BIG, CODE, {"DepsLayerKey": {}})
    assert no_bundle.choice == "layer" and "the template takes no bundle" in no_bundle.reason
    assert bundle.choose("auto", None, CODE, DECLARED).choice is None
    with pytest.raises(InvalidInputError, match="invalid packaging 'zip'"):
        layers.Dependencies(from_installed=["dill"], packaging="zip")
    with pytest.raises(InvalidInputError, match=r"DepsBundleKey.*this one does not"):
        bundle.check_template({"DepsLayerKey": {}}, "bundle")


def test_a_bundle_past_10240_mb_is_refused_naming_its_size() -> None:
    assert bundle.BundleSize(100 * MB, 400 * MB, 5000).check().ephemeral_mb == 561
    size = bundle.BundleSize(3_000 * MB, 8_000 * MB, 20_000)
    with pytest.raises(InvalidInputError) as info:
        size.check()
    text = str(info.value)
    assert "8000.0 MB (8000000000 bytes) unzipped" in text and "10240 MB" in text
    assert f"needs {size.ephemeral_mb} MB" in text


def test_prepare_refuses_an_oversized_bundle_before_any_aws_call(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "deps.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("python/x.py", "X = 1\n")
    # The zip's measured sizes stand for an 11 GB one (writing it would take minutes).
    monkeypatch.setattr(bundle.BundleSize, "of", classmethod(
        lambda cls, data: cls(4_000 * MB, 11_000 * MB, 9)))
    clients, calls = no_aws()
    with pytest.raises(InvalidInputError, match=r"11000.0 MB .* above AWS Lambda's maximum"):
        deployment.prepare(clients, "tdv-test-bucket", "m/model.pkl", prepro,
                           dependencies={"zip_path": str(path), "packaging": "bundle"})
    assert calls == []


RESPONSE_BUNDLE = {"key": "tdv-airflow/deps_bundle/ab/deps_bundle.zip", "sha256": "5" * 64,
                   "zipped_bytes": 117 * MB, "unzipped_bytes": 368 * MB, "files": 9000,
                   "min_ephemeral_storage_mb": 590}


def test_bundle_parameters_size_the_ephemeral_storage() -> None:
    response = {"deps_bundle": RESPONSE_BUNDLE}
    assert bundle.bundle_parameters({"deps_bundle": None}, 1024) == {}
    assert bundle.bundle_parameters(response) == {
        "DepsBundleKey": RESPONSE_BUNDLE["key"], "DepsBundleSha256": "5" * 64,
        "EphemeralStorageSize": 590}
    assert bundle.bundle_parameters(response, 2048)["EphemeralStorageSize"] == 2048
    with pytest.raises(InvalidInputError, match=r"ephemeral_storage=512 MB .* at least 590 MB"):
        bundle.bundle_parameters(response, 512)


def test_prepare_ships_a_bundle_past_250_mb_and_the_stack_takes_it(
        aws: Any, s3: Any, bucket: str, boto_session: Any, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    s3.put_object(Bucket=bucket, Key="m/model.pkl", Body=b"model")
    clients = AwsClients.from_auth(boto_session, "us-east-1")
    deps = {"zip_path": str(big_zip(tmp_path / "deps.zip", layers.LAMBDA_UNZIPPED_LIMIT_BYTES))}
    caplog.set_level(logging.INFO, "tdv_airflow.core.prepare")
    result = deployment.prepare(clients, bucket, "m/model.pkl", prepro, dependencies=deps)
    response = result.response
    assert response["deps_packaging"] == "bundle" and response["s3_deps_layer_key"] is None
    info = response["deps_bundle"]
    assert info["key"].startswith("tdv-airflow/") and info["key"].endswith("deps_bundle.zip")
    assert info["sha256"] == response["sha256"]["deps_bundle"]
    assert info["unzipped_bytes"] > layers.LAMBDA_UNZIPPED_LIMIT_BYTES
    body = s3.get_object(Bucket=bucket, Key=info["key"])["Body"].read()
    assert body == Path(deps["zip_path"]).read_bytes()  # the layer's bytes, as they are
    assert "bundle (auto: code plus layers would be" in caplog.text
    assert "deps_bundle" in result.uploaded
    params = {p["ParameterKey"]: p["ParameterValue"]
              for p in deployment.stack_parameters(response, "tdv-big")}
    assert params["DepsBundleKey"] == info["key"]
    assert params["DepsBundleSha256"] == info["sha256"]
    assert params["EphemeralStorageSize"] == str(info["min_ephemeral_storage_mb"])
    assert "DepsLayerKey" not in params
