"""The endpoint's asset event, as the task runner collects it: promotion (poke and
deferrable) and rollback add ``tdv-endpoint://{region}/{stack}`` through their outlet
alias with what is live, nothing secret; ``endpoint_alias=None`` adds none."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors

from tdv_airflow.assets import ENDPOINT_ALIAS
from tdv_airflow.core.versions import get_version
from tdv_airflow.operators import PromoteOperator, RollbackOperator
from testkit.deployed import DeployedStack, deploy_stack

STACK = "tdv-assets"
CONNECTION = {"aws_conn_id": "aws_default", "region_name": "us-east-1"}


@pytest.fixture
def live(aws: Any, bucket: str) -> DeployedStack:
    """A stack whose version 1 is live."""
    return deploy_stack(aws.endpoint_url, bucket, STACK)


def _events(context: dict[str, Any], alias: str = ENDPOINT_ALIAS) -> list[Any]:
    return list(context["outlet_events"][AssetAlias(alias)].asset_alias_events)


def _check_event(live: DeployedStack, event: Any) -> None:
    """One event of the endpoint asset whose extra is what version 1 serves."""
    record = get_version(live.clients.lambda_, STACK, "1")
    assert (event.source_alias_name, event.dest_asset_key.uri) == (
        ENDPOINT_ALIAS, f"tdv-endpoint://us-east-1/{STACK}")
    extra = event.extra
    assert {k: extra[k] for k in ("stack", "region", "version", "model_s3_key",
                                  "model_sha256")} == {
        "stack": STACK, "region": "us-east-1", "version": "1",
        "model_s3_key": record.model_key, "model_sha256": record.model_sha256}
    assert record.model_key == live.prepared["model_s3_key"]
    assert record.model_sha256 == live.prepared["sha256"]["model"]
    assert extra["endpoint_url"] == live.endpoint["api_endpoint"]
    assert extra["endpoint_url"].startswith("https://")
    text = json.dumps(extra)  # JSON, and nothing secret
    for secret in ("testing", "AKIA", "ApiKey", "x-api-key", "SecretAccessKey"):
        assert secret not in text, (secret, text)


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_promotion_adds_the_endpoint_event_through_its_alias(
        live: DeployedStack, task_context: Callable[..., dict[str, Any]],
        deferrable: bool) -> None:
    context = task_context(outlet_events=OutletEventAccessors())
    promote = PromoteOperator(task_id="promote", stack_name=STACK, version="1",
                              mode="poke", poke_interval=0.2, deferrable=deferrable,
                              **CONNECTION)
    result = promote.execute(context)
    assert result["version"] == "1"
    [event] = _events(context)
    _check_event(live, event)


def test_rollback_adds_the_endpoint_event_and_none_when_switched_off(
        live: DeployedStack, task_context: Callable[..., dict[str, Any]]) -> None:
    context = task_context(outlet_events=OutletEventAccessors())
    RollbackOperator(task_id="rollback", stack_name=STACK, to="1", **CONNECTION).execute(context)
    [event] = _events(context)
    _check_event(live, event)

    quiet = task_context(outlet_events=OutletEventAccessors())
    RollbackOperator(task_id="quiet", stack_name=STACK, to="1", endpoint_alias=None,
                     **CONNECTION).execute(quiet)
    PromoteOperator(task_id="quiet_promote", stack_name=STACK, version="1", mode="poke",
                    deferrable=False, endpoint_alias=None, **CONNECTION).execute(quiet)
    assert len(quiet["outlet_events"]) == 0
