"""EndpointCheckOperator against each front door on the embedded AWS (the local answer
path: the emulator runs no Lambda, so the deployed function answers the door's own event,
payload 2.0 for the HTTP API and the function URL), and an API key refused off the REST
API by the core's create_stack before anything is created."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tdv_airflow.exceptions import InvalidInputError
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.operators import EndpointCheckOperator
from testkit.aws_state import all_objects, live_stacks
from testkit.deployed import DeployedStack, deploy_stack
from testkit.task_context import FakeTaskInstance

BUCKET = "tdv-endpoint-doors"
ROWS = {"rows": [[1, 2], [3, 4.5]]}
SUMS = [3.0, 7.5]
DOORS = {"tdv-check-http": "http", "tdv-check-url": "url"}


def _context() -> dict[str, Any]:
    ti = FakeTaskInstance()
    return {"ti": ti, "run_id": ti.run_id, "dag_id": ti.dag_id, "params": {}}


@pytest.fixture(scope="module")
def stacks(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[dict[str, DeployedStack]]:
    """An IAM stack per door, released (the function URL exists)."""
    local_aws.reset()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TDV_LOCAL_RUN_DIR", str(tmp_path_factory.mktemp("local-run")))
        yield {name: deploy_stack(local_aws.endpoint_url, BUCKET, name, endpoint_auth="iam",
                                  function_options={"front_door": door})
               for name, door in DOORS.items()}


@pytest.mark.parametrize("name", list(DOORS))
def test_the_check_passes_through_each_door(stacks: dict[str, DeployedStack],
                                           name: str) -> None:
    from airflow.sdk.bases.operator import ExecutorSafeguard

    stack = stacks[name]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ExecutorSafeguard, "test_mode", True)
        result = EndpointCheckOperator(task_id="smoke", stack_name=name, payload=ROWS,
                                       expected_predictions=[3, 7.5]).execute(_context())
    if DOORS[name] == "url":
        endpoint = stack.clients.lambda_.get_function_url_config(
            FunctionName=name, Qualifier="live")["FunctionUrl"]
        assert ".lambda-url.us-east-1.on.aws" in endpoint
    else:
        endpoint = stack.outputs["ApiEndpoint"]
    assert result == {"stack_name": name, "api_endpoint": endpoint, "status": 200,
                      "predictions": SUMS}


def test_create_stack_refuses_an_api_key_off_the_rest_api_before_anything(
        stacks: dict[str, DeployedStack]) -> None:
    from tdv_airflow.core.deployment import create_stack

    stack = stacks["tdv-check-http"]
    cfn = stack.clients.cloudformation
    before, objects = live_stacks(cfn), all_objects(stack.s3)
    for door, via in (("http", {"function_options": {"front_door": "http"}}),
                      ("url", {"parameters": {"FrontDoor": "URL"}})):
        with pytest.raises(InvalidInputError, match=f"endpoint_auth='api_key' is not offered "
                                                    f"by front_door='{door}'"):
            create_stack(stack.clients, stack.prepared, f"tdv-check-key-{door}",
                         endpoint_auth="api_key", **via)
    assert live_stacks(cfn) == before
    assert all_objects(stack.s3) == objects
