"""Task defaults from Airflow's configuration: ``[operators] default_deferrable`` and the
provider's section ``[tdv_airflow]`` (``poll_interval``, ``sensor_mode``)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.operators import (
    CreateStackOperator,
    DeleteStackOperator,
    RetireVersionsOperator,
)
from tdv_airflow.sensors import StackStatusSensor

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def _tasks(**kwargs: Any) -> dict[str, Any]:
    """The operators that poll; ``deferrable`` goes to those that can defer."""
    waits = {k: v for k, v in kwargs.items() if k != "deferrable"}
    return {
        "create": CreateStackOperator(task_id="create", prepare_env_response={},
                                      stack_name="s", **kwargs),
        "delete": DeleteStackOperator(task_id="delete", stack_name="s", **kwargs),
        "retire": RetireVersionsOperator(task_id="retire", deployment="d", **waits),
    }


def test_without_configuration_the_defaults_are_30_s_poke_and_not_deferrable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "AIRFLOW__TDV_AIRFLOW__POLL_INTERVAL",
                 "AIRFLOW__TDV_AIRFLOW__SENSOR_MODE"):
        monkeypatch.delenv(name, raising=False)
    tasks = _tasks()
    assert {name: op.poll_interval for name, op in tasks.items()} == {
        "create": 30.0, "delete": 30.0, "retire": 30.0}
    assert (tasks["create"].deferrable, tasks["delete"].deferrable) == (False, False)
    sensor = StackStatusSensor(task_id="wait", stack_name="s")
    assert (sensor.poke_interval, sensor.mode, sensor.deferrable) == (30.0, "poke", False)


def test_the_configuration_sets_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    monkeypatch.setenv("AIRFLOW__TDV_AIRFLOW__POLL_INTERVAL", "7.5")
    monkeypatch.setenv("AIRFLOW__TDV_AIRFLOW__SENSOR_MODE", "reschedule")
    tasks = _tasks()
    assert {name: op.poll_interval for name, op in tasks.items()} == {
        "create": 7.5, "delete": 7.5, "retire": 7.5}
    assert (tasks["create"].deferrable, tasks["delete"].deferrable) == (True, True)
    sensor = StackStatusSensor(task_id="wait", stack_name="s")
    assert (sensor.poke_interval, sensor.mode, sensor.deferrable) == (7.5, "reschedule", True)


def test_arguments_and_default_args_win_over_the_configuration(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk import DAG

    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    monkeypatch.setenv("AIRFLOW__TDV_AIRFLOW__POLL_INTERVAL", "7")
    monkeypatch.setenv("AIRFLOW__TDV_AIRFLOW__SENSOR_MODE", "reschedule")
    tasks = _tasks(poll_interval=2, deferrable=False) | {
        "wait": StackStatusSensor(task_id="wait", stack_name="s", poke_interval=3, mode="poke",
                                  deferrable=False)}
    assert tasks["create"].poll_interval == tasks["delete"].poll_interval == 2
    assert tasks["retire"].poll_interval == 2
    assert not tasks["create"].deferrable and not tasks["delete"].deferrable
    assert (tasks["wait"].poke_interval, tasks["wait"].mode, tasks["wait"].deferrable) == (
        3, "poke", False)
    defaults = {"poke_interval": 4, "mode": "poke", "deferrable": False, "poll_interval": 5}
    with DAG("tdv_config_defaults", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC),
             default_args=defaults):
        sensor = StackStatusSensor(task_id="wait", stack_name="s")
        create = CreateStackOperator(task_id="create", prepare_env_response={}, stack_name="s")
    assert (sensor.poke_interval, sensor.mode, sensor.deferrable) == (4, "poke", False)
    assert (create.poll_interval, create.deferrable) == (5, False)


@pytest.mark.parametrize(("option", "value", "allowed"), [
    ("POLL_INTERVAL", "abc", "a number of seconds above 0"),
    ("POLL_INTERVAL", "0", "a number of seconds above 0"),
    ("POLL_INTERVAL", "-5", "a number of seconds above 0"),
    ("SENSOR_MODE", "sleep", "'poke' or 'reschedule'"),
])
def test_a_bad_configured_value_is_refused_naming_option_value_and_choices(
        monkeypatch: pytest.MonkeyPatch, option: str, value: str, allowed: str) -> None:
    monkeypatch.setenv(f"AIRFLOW__TDV_AIRFLOW__{option}", value)
    with pytest.raises(InvalidInputError) as caught:
        StackStatusSensor(task_id="wait", stack_name="s")
    message = str(caught.value)
    for text in (f"[tdv_airflow] {option.lower()} = {value!r}", allowed,
                 f"AIRFLOW__TDV_AIRFLOW__{option}"):
        assert text in message, message


def test_airflow_config_lists_the_provider_section(tmp_path: Path) -> None:
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW__TDV_AIRFLOW__SENSOR_MODE": "reschedule"}
    done = subprocess.run([AIRFLOW, "config", "list", "--section", "tdv_airflow",
                           "--show-values", "--include-descriptions"], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[tdv_airflow]" in done.stdout
    assert "poll_interval = 30" in done.stdout, done.stdout
    assert "sensor_mode = reschedule" in done.stdout, done.stdout
    assert "Seconds between two polls" in done.stdout


def test_default_deferrable_never_makes_create_wait_by_itself(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "true")
    started = CreateStackOperator(task_id="start", prepare_env_response={}, stack_name="s")
    waits = CreateStackOperator(task_id="wait", prepare_env_response={}, stack_name="s",
                                wait_for_completion=True)
    asked = CreateStackOperator(task_id="defer", prepare_env_response={}, stack_name="s",
                                deferrable=True)
    assert (started.wait_for_completion, started.deferrable) == (False, True)
    assert (waits.wait_for_completion, waits.deferrable) == (True, True)
    assert (asked.wait_for_completion, asked.deferrable) == (True, True)
