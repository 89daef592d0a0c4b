"""Artifacts are deterministic and shaped as Lambda expects."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tdv_airflow.core import artifacts
from tdv_airflow.core.resources import bundle_source_path, default_lambda_source_path
from tdv_airflow.exceptions import InvalidInputError


def test_layer_holds_dill_under_python_and_is_deterministic() -> None:
    first = artifacts.build_layer()
    second = artifacts.build_layer()
    assert first.data == second.data and first.sha256 == second.sha256
    names = zipfile.ZipFile(io.BytesIO(first.data)).namelist()
    assert "python/dill/__init__.py" in names
    assert names == sorted(names)
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    infos = zipfile.ZipFile(io.BytesIO(first.data)).infolist()
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_lambda_code_zip_has_the_handler_at_its_root() -> None:
    art = artifacts.build_lambda_code(default_lambda_source_path())
    zf = zipfile.ZipFile(io.BytesIO(art.data))
    assert zf.namelist() == ["lbd_request_processor.py", "tdv_bundle.py", "tdv_unzip.py"]
    assert zf.read("lbd_request_processor.py") == default_lambda_source_path().read_bytes()
    assert zf.read("tdv_bundle.py") == bundle_source_path().read_bytes()
    assert zf.read("tdv_unzip.py") == bundle_source_path().with_name("tdv_unzip.py").read_bytes()


def test_custom_layer_zip_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / "layer.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("python/x.py", "X = 1\n")
    assert artifacts.build_layer(path).data == path.read_bytes()


def test_bad_overrides(tmp_path: Path) -> None:
    not_zip = tmp_path / "layer.zip"
    not_zip.write_text("hello")
    with pytest.raises(InvalidInputError, match="is not a zip file"):
        artifacts.build_layer(not_zip)
    with pytest.raises(InvalidInputError, match="layer_zip_local_path .* does not exist"):
        artifacts.build_layer(tmp_path / "missing.zip")
    bad_py = tmp_path / "handler.py"
    bad_py.write_text("def handler(:\n")
    with pytest.raises(InvalidInputError, match="is not valid Python"):
        artifacts.build_lambda_code(bad_py)
