"""The front door at every live step, on the embedded AWS's Lambda API: a function URL on
the alias ``live`` made (and kept) by the core, public statements for ``NONE`` only, the
endpoint reported by ``describe_live``; the REST/HTTP permission as before."""

from __future__ import annotations

import json
from typing import Any

from tdv_airflow.core import front_door_aws, rollout
from tests.core.test_rollout import FN, _deploy, lam  # noqa: F401 - the fixture

SOURCE_ARN = "arn:aws:execute-api:us-east-1:123456789012:api/*/POST/predict"


def _sids(client: Any) -> list[str]:
    """The alias's statement ids (none when its policy is empty: AWS then has none)."""
    try:
        raw = client.get_policy(FunctionName=FN, Qualifier="live")["Policy"]
    except client.exceptions.ResourceNotFoundException:
        return []
    policy = json.loads(raw)
    return sorted(s["Sid"] for s in policy["Statement"])


def test_a_url_front_door_gets_its_url_on_the_live_alias_at_the_first_live_step(
        lam: Any) -> None:  # noqa: F811 - the fixture
    v1 = _deploy(lam, "m1").version
    target = rollout.Target(FN, FN, SOURCE_ARN, [], front_door="url", endpoint_auth="NONE")
    assert rollout.describe_live(lam, FN, front_door="url")["endpoint"] is None
    step = rollout.promote_step(lam, target, v1, [1.0], 60)
    url = lam.get_function_url_config(FunctionName=FN, Qualifier="live")
    assert url["FunctionArn"].endswith(f":{FN}:live") and url["AuthType"] == "NONE"
    assert _sids(lam) == sorted(front_door_aws.PUBLIC_URL_STATEMENTS)  # no API permission
    live = rollout.describe_live(lam, FN, step.alias, front_door="url")
    assert live["endpoint"] == url["FunctionUrl"] and live["version"] == v1
    rollout.promote_step(lam, target, v1, [1.0], 60)  # again: nothing twice
    assert _sids(lam) == sorted(front_door_aws.PUBLIC_URL_STATEMENTS)
    # the stack switches to IAM: the URL stays, its public statements go
    iam = rollout.Target(FN, FN, SOURCE_ARN, [], front_door="url", endpoint_auth="AWS_IAM")
    rollout.promote_step(lam, iam, v1, [1.0], 60)
    again = lam.get_function_url_config(FunctionName=FN, Qualifier="live")
    assert (again["FunctionUrl"], again["AuthType"]) == (url["FunctionUrl"], "AWS_IAM")
    assert _sids(lam) == []
    assert front_door_aws.endpoint_status(lam, {"FrontDoor": "URL", "FunctionName": FN}) \
        == (url["FunctionUrl"], None)


def test_an_api_front_door_gets_the_permission_and_no_url(lam: Any) -> None:  # noqa: F811
    v1 = _deploy(lam, "m1").version
    target = rollout.Target(FN, FN, SOURCE_ARN, [], front_door="http")
    rollout.promote_step(lam, target, v1, [1.0], 60)
    assert _sids(lam) == [rollout.PERMISSION_SID]
    assert front_door_aws.function_url(lam, FN) is None
    assert "endpoint" not in rollout.describe_live(lam, FN)
    assert front_door_aws.endpoint_status(lam, {"FrontDoor": "URL", "FunctionName": FN}) \
        == (None, front_door_aws.NO_URL_YET)
    assert front_door_aws.endpoint_status(lam, {"ApiEndpoint": "https://x/predict"}) \
        == ("https://x/predict", None)
