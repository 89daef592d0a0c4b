"""The wheel ships the template and the Lambda source; Airflow sees the provider."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
                    "--outdir", str(out), str(ROOT)], check=True, capture_output=True)
    (whl,) = out.glob("tdv_airflow-*.whl")
    return whl


def test_wheel_ships_template_and_lambda_source(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "tdv_airflow/_bundled/templates/stack_template.json" in names
    assert "tdv_airflow/_bundled/lambda_src/lbd_request_processor.py" in names
    assert "tdv_airflow/_bundled/lambda_src/tdv_bundle.py" in names
    assert "tdv_airflow/deploy.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[apache_airflow_provider]" in text
    assert "tdv_airflow.provider_info:get_provider_info" in text


def test_installed_wheel_finds_its_bundled_files(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(target)
    code = ("from tdv_airflow.core.resources import default_template_path as t, "
            "default_lambda_source_path as s; print(t()); print(s())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(target)},
                         check=True)
    template, source = out.stdout.split()
    assert template.startswith(str(target)) and Path(template).is_file()
    assert source.startswith(str(target)) and Path(source).is_file()


def test_airflow_providers_list_shows_tdv_airflow(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow = Path(sys.executable).with_name("airflow")
    out = subprocess.run([str(airflow), "providers", "list"], capture_output=True, text=True,
                         env=env, check=True)
    assert "tdv-airflow" in out.stdout


def test_package_import_is_cheap() -> None:
    code = ("import sys, tdv_airflow; heavy = [m for m in ('boto3', 'botocore', 'dill', "
            "'sklearn', 'moto') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
