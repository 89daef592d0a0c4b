"""The rollout tasks on the emulator, called as the task runner calls them: validation of
the candidate version, promotion in poke and deferrable mode, rollback; retries change
nothing, bad input is refused when the DAG is parsed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from tdv_airflow.core.rollout import read_alias
from tdv_airflow.core.versions import list_versions
from tdv_airflow.exceptions import CandidateRejectedError, InvalidInputError
from tdv_airflow.operators import PromoteOperator, RollbackOperator, ValidateCandidateOperator
from testkit.deployed import DeployedStack, deploy_stack
from testkit.models import scaled_model_bytes
from testkit.task_context import FakeTaskInstance

STACK = "tdv-rollout"
ROWS = {"rows": [[1, 2], [3, 4]]}
CONNECTION = {"aws_conn_id": "aws_default", "region_name": "us-east-1"}


@pytest.fixture
def candidate(aws: Any, bucket: str) -> tuple[DeployedStack, dict[str, Any]]:
    """A live stack (version 1: sums) and its candidate (the model doubling the sums),
    deployed through the stack but not published."""
    live = deploy_stack(aws.endpoint_url, bucket, STACK)
    live.s3.put_object(Bucket=bucket, Key="models/sec/v2/model.pkl", Body=scaled_model_bytes(2))
    second = type(live.deploy)(bucket, "models/sec/v2/model.pkl", live.deploy.prepro_fn,
                               live.auth, region="us-east-1", stack_name=STACK,
                               poll_interval=0.1, max_attempts=100)
    created = second.create_stack(second.prepare_deployment(), 0)
    return live, created


@pytest.fixture
def validated(candidate: tuple[DeployedStack, dict[str, Any]],
              task_context: Callable[..., dict[str, Any]]) -> tuple[DeployedStack, str]:
    """The live stack and its candidate, validated (version 2, no traffic yet)."""
    live, created = candidate
    return live, _validate(created, [6.0, 14.0]).execute(task_context())["version"]


def _routing(live: DeployedStack) -> tuple[str, dict[str, float]]:
    """The live alias's version and additional weights."""
    alias = read_alias(live.clients.lambda_, STACK)
    assert alias is not None
    return alias.version, dict(alias.weights)


def _validate(created: dict[str, Any], expected: list[float],
              **kw: Any) -> ValidateCandidateOperator:
    return ValidateCandidateOperator(
        task_id="validate", stack_name=STACK, identity=created["identity"],
        requests=[{"payload": ROWS, "expected_predictions": expected}], **CONNECTION, **kw)


def test_validation_publishes_once_and_leaves_the_alias_alone(
        candidate: tuple[DeployedStack, dict[str, Any]],
        task_context: Callable[..., dict[str, Any]]) -> None:
    live, created = candidate
    result = _validate(created, [6.0, 14.0]).execute(task_context())
    assert (result["version"], result["answers"]) == ("2", [{"status": 200,
                                                             "predictions": [6.0, 14.0]}])
    assert result["candidate"]["model_s3_key"] == "models/sec/v2/model.pkl"
    again = _validate(created, [6.0, 14.0]).execute(task_context())
    assert again["version"] == "2"
    assert [r.version for r in list_versions(live.clients.lambda_, STACK)] == ["1", "2"]
    assert _routing(live) == ("1", {})


def test_a_wrong_answer_fails_quoting_it_and_moves_nothing(
        candidate: tuple[DeployedStack, dict[str, Any]],
        task_context: Callable[..., dict[str, Any]]) -> None:
    live, created = candidate
    with pytest.raises(AirflowFailException, match=r"candidate version 2 .* answered "
                       r"wrongly.*predictions \[6.0, 14.0\], expected \[3.0, 7.0\]") as failed:
        _validate(created, [3.0, 7.0]).execute(task_context())
    assert isinstance(failed.value.__cause__, CandidateRejectedError)  # failed, not retried
    assert _routing(live) == ("1", {})


def test_a_user_check_can_refuse_the_candidate(
        candidate: tuple[DeployedStack, dict[str, Any]],
        task_context: Callable[..., dict[str, Any]]) -> None:
    _, created = candidate
    op = _validate(created, [6.0, 14.0],
                   check=lambda a: None if max(a["predictions"]) < 10 else "too large")
    with pytest.raises(AirflowFailException, match="too large") as failed:
        op.execute(task_context())
    assert isinstance(failed.value.__cause__, CandidateRejectedError)


def test_linear_promotion_in_poke_mode_then_a_retry_changes_nothing(
        validated: tuple[DeployedStack, str],
        task_context: Callable[..., dict[str, Any]]) -> None:
    live, version = validated
    promote = PromoteOperator(task_id="promote", stack_name=STACK, version=version,
                              strategy="linear", linear_steps=2, bake_seconds=1,
                              mode="poke", poke_interval=0.2, deferrable=False, **CONNECTION)
    result = promote.execute(task_context())
    assert result["version"] == "2" and result["live"]["previous"] == "1"
    assert [s["model_s3_key"] for s in result["live"]["serving"]] == ["models/sec/v2/model.pkl"]
    before = live.clients.lambda_.get_alias(FunctionName=STACK, Name="live")
    again = promote.execute(task_context())
    after = live.clients.lambda_.get_alias(FunctionName=STACK, Name="live")
    before.pop("ResponseMetadata")
    after.pop("ResponseMetadata")
    assert again["version"] == "2" and before == after
    assert [r.version for r in list_versions(live.clients.lambda_, STACK)] == ["1", "2"]


def test_deferrable_canary_bakes_on_the_triggerer_then_goes_live(
        validated: tuple[DeployedStack, str],
        task_context: Callable[..., dict[str, Any]]) -> None:
    live, version = validated
    promote = PromoteOperator(task_id="promote", stack_name=STACK, version=version,
                              strategy="canary", canary_weight=0.25, bake_seconds=1,
                              poke_interval=0.2, deferrable=True, **CONNECTION)
    context = task_context()
    with pytest.raises(TaskDeferred) as deferred:
        promote.execute(context)
    alias = read_alias(live.clients.lambda_, STACK)
    assert alias is not None and dict(alias.weights) == {"2": 0.25}
    trigger = deferred.value.trigger
    assert type(trigger).__name__ == "BakeTrigger"
    assert trigger.alarm_names == [f"{STACK}-live-errors", f"{STACK}-live-throttles",
                                   f"{STACK}-live-duration-p99", f"{STACK}-api-5xx"]

    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("no event")

    event = asyncio.run(asyncio.wait_for(first(), 30))
    assert event["status"] == "baked"
    result = promote.execute_complete(context, event)
    assert result["version"] == "2"


def test_an_alarm_during_the_bake_rolls_back_and_fails_without_retry(
        validated: tuple[DeployedStack, str],
        task_context: Callable[..., dict[str, Any]]) -> None:
    live, version = validated
    _, failed = alarm_during_canary(live, version, task_context)
    assert re.search(rf"{STACK}-api-5xx since .*: Threshold Crossed: 3 datapoints; the live "
                     r"alias is back on version 1 alone", str(failed)), str(failed)
    assert _routing(live) == ("1", {})


def alarm_during_canary(live: DeployedStack, version: str,
                        task_context: Callable[..., dict[str, Any]]
                        ) -> tuple[PromoteOperator, AirflowFailException]:
    """A canary of ``version`` in poke mode, then its stack's 5xx alarm forced into ALARM
    during the bake: the promotion and how its next poke failed."""
    promote = PromoteOperator(task_id="promote", stack_name=STACK, version=version,
                              strategy="canary", bake_seconds=300, mode="poke",
                              deferrable=False, **CONNECTION)
    assert promote.poke(task_context()) is False
    cw = live.session.client("cloudwatch", endpoint_url=live.auth.endpoint_url)
    cw.set_alarm_state(AlarmName=f"{STACK}-api-5xx", StateValue="ALARM",
                       StateReason="Threshold Crossed: 3 datapoints")
    with pytest.raises(AirflowFailException) as failed:
        promote.poke(task_context())
    return promote, failed.value


def test_rollback_is_one_change_and_a_retry_of_the_same_task_changes_nothing(
        validated: tuple[DeployedStack, str],
        task_context: Callable[..., dict[str, Any]]) -> None:
    live, version = validated
    PromoteOperator(task_id="promote", stack_name=STACK, version=version, mode="poke",
                    deferrable=False, **CONNECTION).execute(task_context())
    ti = FakeTaskInstance(task_id="rollback")
    rollback = RollbackOperator(task_id="rollback", stack_name=STACK, **CONNECTION)
    first = rollback.execute(task_context(ti))
    assert first["changed"] is True
    assert [s["version"] for s in first["live"]["serving"]] == ["1"]
    again = rollback.execute(task_context(ti))
    assert again["changed"] is False
    assert [s["version"] for s in again["live"]["serving"]] == ["1"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda: PromoteOperator(task_id="p", stack_name=STACK, version=2, strategy="blue"),
     "invalid strategy 'blue'"),
    (lambda: PromoteOperator(task_id="p", stack_name=STACK, version=2, strategy="canary",
                             canary_weight=1.5), "invalid canary_weight 1.5"),
    (lambda: PromoteOperator(task_id="p", stack_name=STACK, version=2, bake_seconds=0),
     "invalid bake_seconds 0"),
    (lambda: PromoteOperator(task_id="p", stack_name=STACK, version="$LATEST"),
     "invalid version"),
    (lambda: PromoteOperator(task_id="p", stack_name=STACK, version=2, keep_versions=0),
     "keep_versions"),
    (lambda: RollbackOperator(task_id="r", stack_name=STACK, to="latest"),
     "invalid version 'latest'"),
    (lambda: ValidateCandidateOperator(task_id="v", stack_name=STACK, identity="0" * 16,
                                       requests=[]), "invalid requests"),
    (lambda: ValidateCandidateOperator(task_id="v", stack_name=STACK, identity=None,
                                       requests=[{"payload": {}}]), "invalid identity None"),
    (lambda: ValidateCandidateOperator(task_id="v", stack_name=STACK, identity="0" * 16,
                                       requests=[{"body": 1}]), r"invalid requests\[0\]"),
])
def test_bad_arguments_are_refused_when_the_dag_is_parsed(make: Callable[[], Any],
                                                          message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        make()


def test_an_old_run_cleared_promotes_its_version_again_without_redeploying(
        validated: tuple[DeployedStack, str],
        task_context: Callable[..., dict[str, Any]]) -> None:
    from tdv_airflow.core.stacks import describe
    from tdv_airflow.operators import CreateStackOperator

    live, version = validated
    PromoteOperator(task_id="promote", stack_name=STACK, version=version, mode="poke",
                    deferrable=False, **CONNECTION).execute(task_context())
    cfn = live.clients.cloudformation
    events = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
    # the first run (model v1) cleared: its create task runs again with its own prepare result
    again = CreateStackOperator(task_id="create", prepare_env_response=live.prepared,
                                stack_name=STACK, **CONNECTION).execute(task_context())
    assert cfn.describe_stack_events(StackName=STACK)["StackEvents"] == events, "redeployed"
    stack = describe(cfn, STACK)
    assert stack is not None
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}[
        "ModelKey"] == "models/sec/v2/model.pkl"  # the stack was left as it is
    validated = _validate(again, [3.0, 7.0]).execute(task_context())
    assert validated["version"] == "1"
    promoted = PromoteOperator(task_id="promote", stack_name=STACK, version="1", mode="poke",
                               deferrable=False, **CONNECTION).execute(task_context())
    assert [s["model_s3_key"] for s in promoted["live"]["serving"]] == [
        live.prepared["model_s3_key"]]
    assert [r.version for r in list_versions(live.clients.lambda_, STACK)] == ["1", "2"]
    # once version 1 is retired, the same clear redeploys it through the stack
    live.clients.lambda_.update_alias(FunctionName=STACK, Name="live", FunctionVersion="2")
    live.clients.lambda_.delete_function(FunctionName=STACK, Qualifier="1")
    CreateStackOperator(task_id="create", prepare_env_response=live.prepared, stack_name=STACK,
                        wait_for_completion=True, poll_interval=0.2,
                        **CONNECTION).execute(task_context())
    assert len(cfn.describe_stack_events(StackName=STACK)["StackEvents"]) > len(events)
    assert _validate(again, [3.0, 7.0]).execute(task_context())["version"] == "3"


def test_a_stack_not_promoted_yet_answers_500_and_the_check_says_why(
        aws: Any, bucket: str, task_context: Callable[..., dict[str, Any]]) -> None:
    from tdv_airflow import UserAwsAuth
    from tdv_airflow.exceptions import EndpointCheckError
    from tdv_airflow.local.aws import FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY
    from tdv_airflow.operators import EndpointCheckOperator
    from testkit.models import make_deploy, put_model

    auth = UserAwsAuth(FAKE_ACCESS_KEY_ID, FAKE_SECRET_ACCESS_KEY, endpoint_url=aws.endpoint_url)
    put_model(auth.session("us-east-1").client("s3", endpoint_url=aws.endpoint_url), bucket)
    first = make_deploy(auth, bucket, "tdv-not-live")
    first.create_stack(first.prepare_deployment(), 0)  # created, never validated/promoted
    check = EndpointCheckOperator(task_id="smoke", stack_name="tdv-not-live", payload=ROWS,
                                  **CONNECTION)
    with pytest.raises(EndpointCheckError, match=r"status 500.*Internal server error.*"
                       r"no live version yet.*promote a validated version first"):
        check.execute(task_context())


def test_retention_after_promotion_keeps_the_live_and_the_previous_version(
        validated: tuple[DeployedStack, str],
        task_context: Callable[..., dict[str, Any]]) -> None:
    live, version = validated

    def promote(version: str) -> dict[str, Any]:
        return PromoteOperator(task_id="promote", stack_name=STACK, version=version,
                               keep_versions="1", mode="poke", deferrable=False,
                               **CONNECTION).execute(task_context())

    assert promote(version)["retired"] == []  # 2 is live, 1 the previous one
    live.s3.put_object(Bucket=live.bucket, Key="models/sec/v3/model.pkl",
                       Body=scaled_model_bytes(3))
    third = type(live.deploy)(live.bucket, "models/sec/v3/model.pkl", live.deploy.prepro_fn,
                              live.auth, region="us-east-1", stack_name=STACK,
                              poll_interval=0.1, max_attempts=100)
    created = third.create_stack(third.prepare_deployment(), 0)
    v3 = _validate(created, [9.0, 21.0]).execute(task_context())["version"]
    result = promote(v3)
    assert (result["version"], result["live"]["previous"], result["retired"]) == ("3", "2", ["1"])
    assert [r.version for r in list_versions(live.clients.lambda_, STACK)] == ["2", "3"]
