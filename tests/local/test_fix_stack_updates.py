"""``tdv_airflow.local.fix_stack_updates``: stack updates answer as AWS does.

Each behaviour runs on moto as it is (what moto lacks: when such a test stops failing,
moto has caught up) and on moto with only this fix (what AWS does).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from tdv_airflow.local.fix_stack_updates import FAIL_UPDATE_TAG, allowed_tag_text
from tests.local.conftest import Moto

#: A role (IAM checks tag values) and a parameter with a default, never passed.
TEMPLATE = json.dumps({
    "Parameters": {"Stage": {"Type": "String"},
                   "Retention": {"Type": "Number", "Default": 7}},
    "Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}}},
    },
    "Outputs": {"Stage": {"Value": {"Ref": "Stage"}}},
})
GOOD_TAGS = {"team": "ml", "model": "models/iris/v1.pkl"}
#: A valid S3 key, and a tag value IAM refuses.
BAD_VALUE = "models/iris (v2)/m.pkl"


@pytest.fixture(scope="module")
def plain(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(())


@pytest.fixture(scope="module")
def fixed(moto_with: Callable[[tuple[str, ...]], Moto]) -> Moto:
    return moto_with(("fix_stack_updates",))


def _tags(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def create(moto: Moto, name: str, stage: str = "one") -> Any:
    cfn = moto.client("cloudformation")
    cfn.create_stack(StackName=name, TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
                     Tags=_tags(GOOD_TAGS))
    return cfn


def update(cfn: Any, name: str, stage: str = "one", tags: dict[str, str] | None = None
           ) -> None:
    cfn.update_stack(StackName=name, TemplateBody=TEMPLATE, Capabilities=["CAPABILITY_IAM"],
                     Parameters=[{"ParameterKey": "Stage", "ParameterValue": stage}],
                     Tags=_tags(GOOD_TAGS if tags is None else tags))


def described(cfn: Any, name: str) -> dict[str, Any]:
    return dict(cfn.describe_stacks(StackName=name)["Stacks"][0])


def served(cfn: Any, name: str) -> tuple[str, dict[str, str], dict[str, str], str]:
    """What the stack serves: status, parameters, tags, template."""
    stack = described(cfn, name)
    return (stack["StackStatus"],
            {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]},
            {t["Key"]: t["Value"] for t in stack.get("Tags") or []},
            json.dumps(cfn.get_template(StackName=name)["TemplateBody"], sort_keys=True))


def test_moto_alone_applies_an_identical_update_and_a_refused_tag(plain: Moto) -> None:
    cfn = create(plain, "tdv-plain")
    update(cfn, "tdv-plain")  # AWS: "No updates are to be performed."
    assert described(cfn, "tdv-plain")["StackStatus"] == "UPDATE_COMPLETE"
    assert "LastUpdatedTime" not in described(cfn, "tdv-plain")
    update(cfn, "tdv-plain", "two", {**GOOD_TAGS, "model": BAD_VALUE})  # AWS: rolls back
    status, parameters, tags, _ = served(cfn, "tdv-plain")
    assert (status, parameters["Stage"], tags["model"]) == ("UPDATE_COMPLETE", "two", BAD_VALUE)


def test_with_the_fix_an_identical_update_is_refused_and_a_tag_change_applied(
        fixed: Moto) -> None:
    cfn = create(fixed, "tdv-same")
    created = described(cfn, "tdv-same")
    assert "LastUpdatedTime" not in created
    with pytest.raises(cfn.exceptions.ClientError) as refused:
        update(cfn, "tdv-same")
    assert refused.value.response["Error"] == {
        "Code": "ValidationError", "Message": "No updates are to be performed.",
        "Type": "Sender"}
    assert described(cfn, "tdv-same") == created, "the refused update changed the stack"
    update(cfn, "tdv-same", tags={**GOOD_TAGS, "team": "data"})  # tags alone: an update
    status, _, tags, _ = served(cfn, "tdv-same")
    assert (status, tags["team"]) == ("UPDATE_COMPLETE", "data")
    assert isinstance(described(cfn, "tdv-same")["LastUpdatedTime"], datetime)
    update(cfn, "tdv-same", "two", tags={**GOOD_TAGS, "team": "data"})  # a parameter
    assert served(cfn, "tdv-same")[1]["Stage"] == "two"


def test_with_the_fix_a_refused_tag_rolls_the_update_back(fixed: Moto) -> None:
    cfn = create(fixed, "tdv-rollback")
    update(cfn, "tdv-rollback", "two", {**GOOD_TAGS, "team": "ml2"})
    before = served(cfn, "tdv-rollback")
    first_update = described(cfn, "tdv-rollback")["LastUpdatedTime"]
    update(cfn, "tdv-rollback", "three", {**GOOD_TAGS, "model": BAD_VALUE})
    after = served(cfn, "tdv-rollback")
    assert after[0] == "UPDATE_ROLLBACK_COMPLETE"
    assert after[1:] == before[1:], "the rollback did not keep the previous configuration"
    assert described(cfn, "tdv-rollback")["LastUpdatedTime"] > first_update
    events = cfn.describe_stack_events(StackName="tdv-rollback")["StackEvents"][:8]
    seen = [(e["LogicalResourceId"], e["ResourceStatus"], e.get("ResourceStatusReason"))
            for e in reversed(events)]
    assert [(logical, status) for logical, status, _ in seen] == [
        ("tdv-rollback", "UPDATE_IN_PROGRESS"), ("Role", "UPDATE_IN_PROGRESS"),
        ("Role", "UPDATE_FAILED"), ("tdv-rollback", "UPDATE_ROLLBACK_IN_PROGRESS"),
        ("Role", "UPDATE_IN_PROGRESS"), ("Role", "UPDATE_COMPLETE"),
        ("tdv-rollback", "UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS"),
        ("tdv-rollback", "UPDATE_ROLLBACK_COMPLETE")]
    assert seen[0][2] == "User Initiated"
    reason = str(seen[2][2])
    assert f"Value '{BAD_VALUE}' at 'tags.2.member.value'" in reason
    assert "(Service: Iam, Status Code: 400)" in reason
    assert seen[3][2] == "The following resource(s) failed to update: [Role]. "
    # The version it serves again: nothing to update. Another version: an update.
    with pytest.raises(cfn.exceptions.ClientError, match="No updates are to be performed"):
        update(cfn, "tdv-rollback", "two", {**GOOD_TAGS, "team": "ml2"})
    update(cfn, "tdv-rollback", "four", GOOD_TAGS)
    assert served(cfn, "tdv-rollback")[:2] == ("UPDATE_COMPLETE", {"Stage": "four",
                                                                    "Retention": "7"})


def test_with_the_fix_the_test_hook_fails_an_update_with_its_message(fixed: Moto) -> None:
    cfn = create(fixed, "tdv-hook")
    update(cfn, "tdv-hook", "two", {**GOOD_TAGS, FAIL_UPDATE_TAG: "forced by the test"})
    assert served(cfn, "tdv-hook")[:3] == ("UPDATE_ROLLBACK_COMPLETE", {
        "Stage": "one", "Retention": "7"}, GOOD_TAGS)
    failed = [e for e in cfn.describe_stack_events(StackName="tdv-hook")["StackEvents"]
              if e["ResourceStatus"] == "UPDATE_FAILED"]
    assert [e["ResourceStatusReason"] for e in failed] == [
        'Resource handler returned message: "forced by the test" (Service: Iam, '
        "Status Code: 400)"]


@pytest.mark.parametrize("text,limit,ok", [
    ("models/iris/v1.pkl", 256, True), ("Modèle 2 _.:/=+-@", 256, True), ("", 256, True),
    ("x" * 256, 256, True), ("x" * 257, 256, False), ("k" * 129, 128, False),
    (BAD_VALUE, 256, False), ("a,b", 256, False), ("a*b", 256, False), ("a$b", 256, False),
    ("it's", 256, False), ("a&b", 256, False), ("a!b", 256, False)])
def test_the_tag_rule_is_iam_and_logs_rule(text: str, limit: int, ok: bool) -> None:
    assert allowed_tag_text(text, limit) is ok
