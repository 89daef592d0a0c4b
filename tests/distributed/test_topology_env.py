"""The harness gives native processes the Compose file's settings, translated faithfully."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from testkit.compose_env import interpolate, native_env, translate_hosts
from testkit.compose_spec import SHARED_ENV, airflow_env
from testkit.processes import TopologyError

NETLOCS = {"postgres": "127.0.0.1:5001", "redis": "127.0.0.1:5002",
           "local-aws": "127.0.0.1:5003", "airflow-apiserver": "127.0.0.1:5004"}


def test_interpolation_applies_compose_defaults_and_ignores_the_callers_shell() -> None:
    assert interpolate("${A:-x}") == "x"
    assert interpolate("${A:-x}", {"A": ""}) == "x"
    assert interpolate("${A-x}", {"A": ""}) == ""
    assert interpolate("${A:-x}", {"A": "y"}) == "y"
    assert interpolate("${A}") == ""
    assert interpolate("a$$b") == "a$b"
    with pytest.raises(TopologyError, match="required"):
        interpolate("${A:?set it}")


def test_hosts_are_translated_in_plain_and_percent_encoded_urls() -> None:
    assert translate_hosts("postgresql+psycopg2://airflow:airflow@postgres/airflow", NETLOCS) \
        == "postgresql+psycopg2://airflow:airflow@127.0.0.1:5001/airflow"
    assert translate_hosts("redis://:@redis:6379/0", NETLOCS) == "redis://:@127.0.0.1:5002/0"
    assert translate_hosts("http://airflow-apiserver:8080/execution/", NETLOCS) \
        == "http://127.0.0.1:5004/execution/"
    assert translate_hosts("aws://t:t@/?endpoint_url=http%3A%2F%2Flocal-aws%3A5000&r=1",
                           NETLOCS) == "aws://t:t@/?endpoint_url=http%3A%2F%2F127.0.0.1%3A5003&r=1"


def test_a_compose_host_without_a_native_address_is_refused() -> None:
    with pytest.raises(TopologyError, match="redis"):
        translate_hosts("redis://:@redis:6379/0", {"postgres": "127.0.0.1:1"})


def test_the_native_env_is_the_compose_env_with_only_addresses_and_paths_changed(
        tmp_path: Path) -> None:
    compose = airflow_env()
    native = native_env(compose, NETLOCS, tmp_path)
    assert set(native) == set(compose)
    assert set(SHARED_ENV) <= set(native)
    assert native["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert native["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@127.0.0.1:5001/airflow")
    assert "@127.0.0.1:5002/" in native["AIRFLOW__CELERY__BROKER_URL"]
    assert native["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://127.0.0.1:5004/")
    assert native["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(str(tmp_path))
    conn = urlparse(native["AIRFLOW_CONN_AWS_DEFAULT"])
    assert parse_qs(conn.query)["endpoint_url"] == ["http://127.0.0.1:5003"]
    unchanged = [k for k in compose if "$" not in compose[k] and not any(
        host in compose[k] for host in (*NETLOCS, "/opt/airflow"))]
    assert unchanged and all(native[k] == compose[k] for k in unchanged)
