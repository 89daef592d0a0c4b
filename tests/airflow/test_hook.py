"""TdvDeploymentHook: clients built from the Airflow connection (extras included)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tdv_airflow.hooks import TdvDeploymentHook


def test_clients_follow_the_connection(aws: Any, bucket: str) -> None:
    hook = TdvDeploymentHook(aws_conn_id="aws_default")
    clients = hook.clients()
    assert hook.endpoint_url == aws.endpoint_url
    assert clients.region_name == "us-east-1"
    assert clients.cloudformation is hook.conn
    for client in (clients.s3, clients.cloudformation, clients.lambda_):
        assert client.meta.endpoint_url == aws.endpoint_url
        assert client.meta.region_name == "us-east-1"
    assert bucket in {b["Name"] for b in clients.s3.list_buckets()["Buckets"]}


def test_region_and_botocore_config_arguments_win(aws: Any, monkeypatch: pytest.MonkeyPatch
                                                  ) -> None:
    conn = json.loads(aws.environ()["AIRFLOW_CONN_AWS_DEFAULT"])
    conn["extra"]["service_config"] = {"s3": {"endpoint_url": "http://127.0.0.1:9"}}
    monkeypatch.setenv("AIRFLOW_CONN_TDV_OTHER", json.dumps(conn))
    hook = TdvDeploymentHook(aws_conn_id="tdv_other", region_name="eu-west-1",
                             config={"retries": {"mode": "standard", "max_attempts": 7}})
    s3 = hook.get_client("s3")
    assert s3.meta.region_name == "eu-west-1"
    assert s3.meta.endpoint_url == "http://127.0.0.1:9", "per-service endpoint extra ignored"
    assert s3.meta.config.retries["total_max_attempts"] == 8  # 7 retries + the first call
    assert hook.get_client("lambda").meta.endpoint_url == aws.endpoint_url
