"""One botocore configuration for every client (retry mode and attempts, timeouts): the
core's default, under the connection's ``config_kwargs`` extra, under the task's
``botocore_config``; and botocore's standard retries riding out a throttling endpoint.

The hook's cases use real Airflow connections (``AIRFLOW_CONN_*``) and build real clients.
"""

from __future__ import annotations

import json
from copy import deepcopy
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tdv_airflow.core.clients import (
    DEFAULT_BOTOCORE_CONFIG,
    AwsClients,
    UserAwsAuth,
    botocore_config,
)
from tests.core.throttling_server import Script, refusing_endpoint

DEFAULT_RETRIES = {"mode": "standard", "total_max_attempts": 9}  # 8 retries + the first


def test_the_core_s_clients_use_the_default() -> None:
    before = deepcopy(DEFAULT_BOTOCORE_CONFIG)
    clients = AwsClients.from_auth(UserAwsAuth("testing", "testing"), "us-east-1")
    for client in (clients.s3, clients.cloudformation, clients.lambda_):
        config = client.meta.config
        assert config.retries == DEFAULT_RETRIES
        assert (config.connect_timeout, config.read_timeout) == (10, 60)
    assert DEFAULT_BOTOCORE_CONFIG == before, "botocore rewrote the shared default"


@pytest.mark.parametrize(("layers", "retries"), [
    ((), {"mode": "standard", "max_attempts": 8}),
    (({"retries": {"max_attempts": 3}},), {"mode": "standard", "max_attempts": 3}),
    (({"retries": {"mode": "adaptive"}}, None), {"mode": "adaptive", "max_attempts": 8}),
    (({"retries": {"max_attempts": 3}}, {"retries": {"total_max_attempts": 2}}),
     {"mode": "standard", "total_max_attempts": 2}),
])
def test_retries_merge_key_by_key(layers: tuple[Any, ...], retries: dict[str, Any]) -> None:
    config = botocore_config(*layers)
    assert config.retries == retries
    assert config.read_timeout == 60


def test_a_later_layer_wins_for_other_settings() -> None:
    from botocore.config import Config

    config = botocore_config({"read_timeout": 5, "connect_timeout": 3},
                             Config(read_timeout=7))
    assert (config.connect_timeout, config.read_timeout) == (3, 7)


def connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, endpoint_url: str,
               **extra: Any) -> str:
    """Define Airflow connection ``conn_id`` (an ``AIRFLOW_CONN_*`` variable)."""
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing",
        "extra": {"region_name": "us-east-1", "endpoint_url": endpoint_url, **extra}}))
    return conn_id


@pytest.mark.parametrize(("extra", "task", "retries"), [
    ({}, None, DEFAULT_RETRIES),
    ({"config_kwargs": {"retries": {"max_attempts": 3}}}, None,
     {"mode": "standard", "total_max_attempts": 4}),
    ({"config_kwargs": {"retries": {"max_attempts": 3}, "read_timeout": 30}},
     {"retries": {"max_attempts": 5}}, {"mode": "standard", "total_max_attempts": 6}),
])
def test_a_hook_s_clients_layer_default_connection_and_task(
        monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], task: dict[str, Any] | None,
        retries: dict[str, Any]) -> None:
    from tdv_airflow.hooks import TdvDeploymentHook
    from tdv_airflow.triggers import StackStatusTrigger

    conn_id = connection(monkeypatch, "tdv_retries", "http://127.0.0.1:9", **extra)
    hook = TdvDeploymentHook(aws_conn_id=conn_id, config=task)
    trigger = StackStatusTrigger(stack_name="tdv-x", aws_conn_id=conn_id, botocore_config=task)
    clients = [hook.conn, hook.get_client("s3"), hook.clients().lambda_,
               trigger._cloudformation()]
    for client in clients:
        assert client.meta.config.retries == retries
        assert client.meta.config.read_timeout == (30 if "read_timeout" in str(extra) else 60)
    assert hook.conn.meta.config.user_agent_extra, "the provider's user agent was dropped"


@pytest.mark.parametrize(("task", "requests", "succeeds"), [
    (None, 3, True),                                       # the default: 9 attempts
    ({"retries": {"max_attempts": 2}}, 3, True),           # botocore: 2 *retries*
    ({"retries": {"max_attempts": 1}}, 2, False),
    ({"retries": {"total_max_attempts": 2}}, 2, False),
])
def test_standard_retries_ride_out_throttling(monkeypatch: pytest.MonkeyPatch,
                                              task: dict[str, Any] | None, requests: int,
                                              succeeds: bool) -> None:
    """CloudFormation answers ``Throttling`` (HTTP 400) twice, then DescribeStacks."""
    from tdv_airflow.hooks import TdvDeploymentHook

    script = Script(refusals=2, status=400, code="Throttling")
    with refusing_endpoint(script) as url:
        hook = TdvDeploymentHook(aws_conn_id=connection(monkeypatch, "tdv_throttled", url),
                                 config=task)
        if succeeds:
            answer = hook.conn.describe_stacks()
            assert answer["Stacks"] == []
            assert answer["ResponseMetadata"]["RetryAttempts"] == 2
        else:
            with pytest.raises(ClientError, match="Throttling") as info:
                hook.conn.describe_stacks()
            assert info.value.response["ResponseMetadata"]["RetryAttempts"] == requests - 1
    assert len(script.seen) == requests
    assert all("Action=DescribeStacks" in line for line in script.seen)
