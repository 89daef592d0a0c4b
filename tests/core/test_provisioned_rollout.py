"""Provisioned concurrency follows the stack onto the alias ``live`` at every live step
(the template declares no alias: the core applies the stack's ``ProvisionedConcurrency``)."""

from __future__ import annotations

from typing import Any

from tdv_airflow.core import concurrency, rollout
from tests.core.test_rollout import FN, _deploy, lam  # noqa: F401 - the fixture

SOURCE_ARN = "arn:aws:execute-api:us-east-1:123456789012:api/*/POST/predict"


def test_the_stack_s_provisioned_concurrency_lands_on_the_live_alias_and_goes_with_0(
        lam: Any) -> None:  # noqa: F811 - the fixture
    stack_id = f"arn:aws:cloudformation:us-east-1:123456789012:stack/{FN}/1"
    stack = {"StackName": FN, "StackId": stack_id, "Outputs": [
        {"OutputKey": "LiveAlias", "OutputValue": "live"},
        {"OutputKey": "FunctionName", "OutputValue": FN},
        {"OutputKey": "ApiId", "OutputValue": "api"},
        {"OutputKey": "ProvisionedConcurrency", "OutputValue": "3"}]}
    target = rollout.target_of(stack)
    assert target.provisioned_concurrency == 3
    v1 = _deploy(lam, "m1").version
    rollout.promote_step(lam, target, v1, [1.0], 60)  # the first version goes live at once
    status = concurrency.provisioned_concurrency_status(lam, FN)
    assert status is not None and status["requested"] == 3
    v2 = _deploy(lam, "m2").version
    step = rollout.promote_step(lam, target, v2, [0.5, 1.0], 60)
    assert step.phase != "live" and step.alias.weights == {v2: 0.5}
    assert concurrency.provisioned_concurrency_status(lam, FN)["requested"] == 3  # kept
    rollout.promote_step(lam, rollout.Target(FN, FN, SOURCE_ARN, []), v1, [1.0], 60)
    assert concurrency.provisioned_concurrency_status(lam, FN) is None  # 0: removed
