"""docker-compose.yml is checked statically: Docker does not run on these machines."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from testkit.compose_spec import EXAMPLE_DAG, ROOT, load, param_default, problems
from testkit.example_dag import DAG_BUCKET


def test_the_compose_file_is_complete_and_consistent() -> None:
    assert problems(load()) == []


@pytest.mark.parametrize("service", ["redis", "postgres", "airflow-triggerer", "airflow-worker",
                                     "airflow-dag-processor", "local-aws"])
def test_a_removed_service_is_reported(service: str) -> None:
    spec = copy.deepcopy(load())
    del spec["services"][service]
    assert f"service {service!r} is missing" in problems(spec)


def test_disagreeing_settings_are_reported() -> None:
    spec = copy.deepcopy(load())
    spec["services"]["airflow-worker"]["environment"]["AIRFLOW__CELERY__BROKER_URL"] = (
        "redis://:@elsewhere:6379/0")
    assert any(p.startswith("services disagree on AIRFLOW__CELERY__BROKER_URL")
               for p in problems(spec))
    spec = copy.deepcopy(load())
    for svc in spec["services"].values():
        if "environment" in svc and "AIRFLOW__CORE__EXECUTOR" in svc["environment"]:
            svc["environment"]["AIRFLOW__CORE__EXECUTOR"] = "LocalExecutor"
    assert "the executor is not CeleryExecutor" in problems(spec)


def test_missing_files_are_reported(tmp_path: Path) -> None:
    for name in ("docker-compose.yml", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    for folder in ("docker", "dags", "tdv_airflow", "templates", "lambda_src"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    assert problems(load(tmp_path / "docker-compose.yml"), tmp_path) == []
    shutil.rmtree(tmp_path / "lambda_src")
    assert "Dockerfile COPY source 'lambda_src' does not exist" in problems(
        load(tmp_path / "docker-compose.yml"), tmp_path)
    shutil.rmtree(tmp_path / "dags")
    assert "service 'airflow-scheduler' mounts missing path './dags'" in problems(
        load(tmp_path / "docker-compose.yml"), tmp_path)
    (tmp_path / "docker" / "Dockerfile").unlink()
    assert "service 'airflow-worker' builds from missing docker/Dockerfile" in problems(
        load(tmp_path / "docker-compose.yml"), tmp_path)


def test_airflow_init_creates_the_example_dags_bucket() -> None:
    assert param_default(ROOT / EXAMPLE_DAG, "bucket") == DAG_BUCKET
    spec = copy.deepcopy(load())
    spec["services"]["airflow-init"]["environment"]["TDV_LOCAL_BUCKET"] = "other-bucket"
    assert ("airflow-init creates bucket 'other-bucket' but the example DAG's Param 'bucket' "
            f"defaults to {DAG_BUCKET!r}") in problems(spec)
    spec["services"]["airflow-init"]["command"] = ["-c", "airflow db migrate"]
    assert "airflow-init does not create the example DAG's bucket (TDV_LOCAL_BUCKET)" in (
        problems(spec))


def test_sensors_that_would_not_defer_are_reported() -> None:
    spec = copy.deepcopy(load())
    for svc in spec["services"].values():
        (svc.get("environment") or {}).pop("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", None)
    assert any(p.startswith("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE is not true")
               for p in problems(spec))
