"""The seed facade outside Airflow: ``deploy`` makes the new version live, ``rollback``
puts the previous one back in one alias change, and requests follow the alias."""

from __future__ import annotations

import json
from typing import Any

from tdv_airflow.core.stacks import describe
from tdv_airflow.local.request import request_stack
from testkit.deployed import deploy_stack
from testkit.models import scaled_model_bytes

STACK = "tdv-facade"
ROWS = {"rows": [[1, 2], [3, 4]]}


def _answer(deployed: Any) -> list[float]:
    stack = describe(deployed.clients.cloudformation, STACK)
    assert stack is not None
    answer = request_stack(deployed.clients, stack, ROWS)
    assert answer.status == 200, answer.body
    return list(json.loads(answer.body)["predictions"])


def test_deploy_goes_live_and_rollback_puts_the_previous_model_back(aws: Any,
                                                                     bucket: str) -> None:
    first = deploy_stack(aws.endpoint_url, bucket, STACK)
    assert first.endpoint["live"]["version"] == "1"
    second = deploy_stack(aws.endpoint_url, bucket, STACK, model=scaled_model_bytes(10),
                          model_key="models/sec/v2/model.pkl")
    assert second.endpoint["live"]["version"] == "2"
    assert second.endpoint["live"]["previous"] == "1"
    assert _answer(second) == [30.0, 70.0]
    cfn = second.clients.cloudformation
    events = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
    back = second.deploy.rollback()
    assert [(s["version"], s["share"]) for s in back["serving"]] == [("1", 1.0)]
    assert back["serving"][0]["model_s3_key"] == first.prepared["model_s3_key"]
    assert _answer(second) == [3.0, 7.0]
    # one alias change: the stack was not touched
    assert cfn.describe_stack_events(StackName=STACK)["StackEvents"] == events
    # release makes what the stack deploys live again: model 2, its version found, not
    # published twice
    assert second.deploy.release()["version"] == "2"
    assert _answer(second) == [30.0, 70.0]
