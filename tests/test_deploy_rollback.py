"""`Deploy` on a stack back from a failed update (UPDATE_ROLLBACK_COMPLETE): re-deploying
the version it serves succeeds, on the emulator made faithful (fix_stack_updates)."""

from __future__ import annotations

from typing import Any

import pytest

from tdv_airflow import Deploy, UserAwsAuth
from tdv_airflow.core import deployment
from tdv_airflow.exceptions import StackFailedError
from tdv_airflow.local.fix_stack_updates import FAIL_UPDATE_TAG

STACK = "tdv-deploy-rolled"


def double(payload: Any) -> list[float]:
    return [2.0 * float(x) for x in payload]


def triple(payload: Any) -> list[float]:
    return [3.0 * float(x) for x in payload]


def _deploy(aws: Any, bucket: str, model_key: str, prepro: Any) -> Deploy:
    auth = UserAwsAuth("testing", "testing", endpoint_url=aws.endpoint_url)
    return Deploy(bucket, model_key, prepro, auth, region="us-east-1", stack_name=STACK,
                  poll_interval=0.1, max_attempts=20)


def test_redeploying_the_served_version_after_a_rolled_back_update_succeeds(
        aws: Any, cfn: Any, bucket: str, model_in_s3: str) -> None:
    v1 = _deploy(aws, bucket, model_in_s3, double)
    first = v1.deploy(invoke_mode=0)
    assert first["stack_status"] == "CREATE_COMPLETE"
    served = {p["ParameterKey"]: p["ParameterValue"]
              for p in cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Parameters"]}

    # Another run's update (v2) fails and rolls back: the stack serves v1 again.
    v2 = _deploy(aws, bucket, model_in_s3, triple)
    failed = deployment.create_stack(v2.clients, v2.prepare_deployment(), STACK,
                                     tags={FAIL_UPDATE_TAG: "forced by the test"})
    assert failed["stack_status"] == "UPDATE_ROLLBACK_COMPLETE"
    assert v1.get_clf_stack_status() == "UPDATE_ROLLBACK_COMPLETE"
    with pytest.raises(StackFailedError, match="forced by the test"):
        _wait_for(v2, failed)  # whoever wanted v2 sees its update's failure

    again = v1.deploy(invoke_mode=0)
    assert again == {**first, "stack_status": "UPDATE_ROLLBACK_COMPLETE"}
    created = v1.create_stack(v1.prepare_deployment(), invoke_mode=0)
    assert (created["operation"], created["stack_status"]) == (
        "unchanged", "UPDATE_ROLLBACK_COMPLETE")
    assert {p["ParameterKey"]: p["ParameterValue"] for p in cfn.describe_stacks(
        StackName=STACK)["Stacks"][0]["Parameters"]} == served

    # v2 itself, without the failure, updates the stack.
    updated = v2.create_stack(v2.prepare_deployment(), invoke_mode=0)
    assert (updated["operation"], updated["stack_status"]) == ("updated", "UPDATE_COMPLETE")


def _wait_for(d: Deploy, created: dict[str, Any]) -> None:
    """Wait as ``Deploy.create_stack`` does, for what ``created`` asked."""
    from tdv_airflow.core import stacks

    stacks.wait_for_stack(d.clients.cloudformation, created["stack_id"], 0.1, 5,
                          expected_fingerprint=created["fingerprint"])
