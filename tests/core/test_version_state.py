"""A published version is invoked only once Active: SnapStart keeps it Pending while Lambda
takes its snapshot (a state the emulator never shows: botocore's Stubber on the documented
GetFunctionConfiguration shape)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from tdv_airflow.core.versions import wait_active
from tdv_airflow.exceptions import RolloutError

FN = "tdv-snap"


def _conf(state: str, code: str | None = None, reason: str | None = None) -> dict[str, object]:
    conf: dict[str, object] = {"FunctionName": FN, "Version": "3", "State": state}
    if code:
        conf.update(StateReasonCode=code, StateReason=reason)
    return conf


def _stubbed(*states: dict[str, object]) -> tuple[object, Stubber]:
    lam = boto3.client("lambda", region_name="us-east-1", aws_access_key_id="k",
                       aws_secret_access_key="s")  # noqa: S106 - a stub, never sent
    stub = Stubber(lam)
    for conf in states:
        stub.add_response("get_function_configuration", conf,
                          {"FunctionName": FN, "Qualifier": "3"})
    stub.activate()
    return lam, stub


def test_a_pending_snapshot_is_waited_for_until_active() -> None:
    lam, stub = _stubbed(_conf("Pending", "Creating", "Lambda is creating the snapshot"),
                         _conf("Pending", "Creating", "Lambda is creating the snapshot"),
                         _conf("Active"))
    wait_active(lam, FN, "3", poll=0)
    stub.assert_no_pending_responses()


def test_a_failed_version_is_refused_with_lambda_s_reason() -> None:
    lam, _ = _stubbed(_conf("Failed", "InvalidRuntime", "SnapStart is not supported"))
    with pytest.raises(RolloutError, match=r"version 3 of 'tdv-snap' is Failed.*"
                                           r"SnapStart is not supported.*not moved"):
        wait_active(lam, FN, "3", poll=0)


def test_a_version_pending_past_the_timeout_is_refused() -> None:
    lam, _ = _stubbed(_conf("Pending", "Creating", "snapshot"))
    with pytest.raises(RolloutError, match="is Pending, not Active"):
        wait_active(lam, FN, "3", timeout=0, poll=0)
