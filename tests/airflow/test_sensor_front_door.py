"""The sensor on a function URL stack: its endpoint is the alias ``live``'s URL (read from
Lambda, not an output), and before the first release it says why there is none."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tdv_airflow.core.front_door_aws import NO_URL_YET
from tdv_airflow.sensors.deployment import StackStatusSensor
from tdv_airflow.triggers.deployment import SUCCESS
from testkit.deployed import deploy_stack

STACK = "tdv-sensor-url"
CONTRACT_KEYS = {"stack_name", "stack_id", "stack_status", "api_name", "api_endpoint",
                 "outputs"}


def _sensor(**kwargs: Any) -> StackStatusSensor:
    return StackStatusSensor(task_id="wait", stack_name=STACK, poke_interval=0.2, timeout=60,
                             aws_conn_id="aws_default", **kwargs)


def test_the_sensor_returns_a_url_stacks_endpoint_or_why_it_has_none(
        aws: Any, task_context: Any, caplog: pytest.LogCaptureFixture) -> None:
    stack = deploy_stack(aws.endpoint_url, "tdv-sensor-url-bucket", STACK,
                         endpoint_auth="none", function_options={"front_door": "url"})
    lam = stack.clients.lambda_
    url = lam.get_function_url_config(FunctionName=STACK, Qualifier="live")["FunctionUrl"]
    result = _sensor().execute(task_context())
    assert set(result) == CONTRACT_KEYS | {"api_endpoint_reason"}  # added, none renamed
    assert (result["api_endpoint"], result["api_endpoint_reason"]) == (url, None)
    assert result["outputs"]["FrontDoor"] == "URL"
    # the deferrable path (resumed from the trigger's event) says the same
    event = {"status": SUCCESS, "stack": {k: v for k, v in result.items()
                                          if k in CONTRACT_KEYS} | {"api_endpoint": None}}
    assert _sensor().execute_complete(task_context(), event)["api_endpoint"] == url
    # the facade's rollback reports the URL too (describe_live with the stack's door)
    assert stack.deploy.rollback(to=1)["endpoint"] == url
    # before the first release the alias has no URL: none, and the reason
    lam.delete_function_url_config(FunctionName=STACK, Qualifier="live")
    with caplog.at_level(logging.WARNING):
        before = _sensor().execute(task_context())
    assert (before["api_endpoint"], before["api_endpoint_reason"]) == (None, NO_URL_YET)
    assert "created on the alias 'live'" in caplog.text
