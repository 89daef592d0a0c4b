"""core.stacks on the faithful emulator and on documented answers: a stack back from a
failed update serves its previous state, which can be deployed again; each request has
its own ClientRequestToken; a token CloudFormation already knows is handled."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from tdv_airflow.core import stacks
from tdv_airflow.core.naming import operation_token
from tdv_airflow.core.store import template_url
from tdv_airflow.exceptions import StackFailedError
from tdv_airflow.local.fix_stack_updates import FAIL_UPDATE_TAG
from testkit import stubbed_stacks

#: A small stack: a role (it takes the stack's tags) and one parameter.
TEMPLATE = json.dumps({
    "Parameters": {"Stage": {"Type": "String"}},
    "Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {
        "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole"}]}}}},
    "Outputs": {"ApiName": {"Value": {"Ref": "Stage"}},
                "ApiEndpoint": {"Value": "https://tdv.example.com/prod/predict"}},
})
TAGS = {"team": "ml"}


def _stage(value: str) -> list[dict[str, str]]:
    return [{"ParameterKey": "Stage", "ParameterValue": value}]


@pytest.fixture
def deploy(s3: Any, bucket: str, cfn: Any) -> Callable[..., dict[str, Any]]:
    """``create_or_update`` of the small stack ``tdv-core``, recording the tokens sent."""
    s3.put_object(Bucket=bucket, Key="t/template.json", Body=TEMPLATE.encode())
    url = template_url(bucket, "t/template.json", "us-east-1")

    def run(stage: str, run_token: str = "tdv-run", **tags: str) -> dict[str, Any]:
        return stacks.create_or_update(cfn, "tdv-core", url, _stage(stage), {**TAGS, **tags},
                                       client_request_token=run_token, poll_interval=0.1)

    return run


def _sent_tokens(cfn: Any) -> list[tuple[str, str]]:
    """Record ``(operation, ClientRequestToken)`` of every create and update sent."""
    sent: list[tuple[str, str]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent.append((model.name, params.get("ClientRequestToken", "")))

    cfn.meta.events.register("provide-client-params.cloudformation.CreateStack", record)
    cfn.meta.events.register("provide-client-params.cloudformation.UpdateStack", record)
    return sent


def test_redeploying_what_a_rolled_back_stack_serves_is_success_not_update(
        cfn: Any, deploy: Callable[..., dict[str, Any]]) -> None:
    served = deploy("one")
    assert (served["operation"], served["stack_status"]) == ("created", "CREATE_COMPLETE")
    failed = deploy("two", "tdv-run2", **{FAIL_UPDATE_TAG: "forced by the test"})
    assert (failed["operation"], failed["stack_status"]) == (
        "update_failed", "UPDATE_ROLLBACK_COMPLETE")
    assert failed["fingerprint"] != served["fingerprint"]
    again = deploy("one", "tdv-run3")  # AWS: "No updates are to be performed."
    assert again == {**stacks.summary(stacks.describe(cfn, "tdv-core") or {}),
                     "fingerprint": served["fingerprint"], "operation": "unchanged"}
    assert again["stack_status"] == "UPDATE_ROLLBACK_COMPLETE"
    # Whoever wanted that state sees success; whoever wanted the failed one, a failure.
    assert stacks.wait_for_stack(cfn, "tdv-core", 0.1, 2, expected_fingerprint=served[
        "fingerprint"])["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    with pytest.raises(StackFailedError, match="forced by the test") as own:
        stacks.wait_for_stack(cfn, "tdv-core", 0.1, 2, expected_fingerprint=failed[
            "fingerprint"])
    assert own.value.status == "UPDATE_ROLLBACK_COMPLETE"
    with pytest.raises(StackFailedError, match="UPDATE_ROLLBACK_COMPLETE"):
        stacks.wait_for_stack(cfn, "tdv-core", 0.1, 2)
    assert stacks.find_applied(cfn, "tdv-core", served["fingerprint"]) is not None
    assert stacks.find_applied(cfn, "tdv-core", failed["fingerprint"]) is None


def test_the_failure_named_is_the_latest_operations(cfn: Any, deploy: Callable[..., Any]
                                                    ) -> None:
    deploy("one")
    deploy("two", **{FAIL_UPDATE_TAG: "first failure"})
    deploy("three", **{FAIL_UPDATE_TAG: "second failure"})
    with pytest.raises(StackFailedError) as caught:
        stacks.raise_if_failed(cfn, stacks.describe(cfn, "tdv-core") or {})
    assert "second failure" in str(caught.value.failed_event)
    assert "first failure" not in str(caught.value)


def test_a_new_attempt_after_a_rollback_sends_a_new_token(
        cfn: Any, deploy: Callable[..., dict[str, Any]]) -> None:
    sent = _sent_tokens(cfn)
    deploy("one")
    failing = {FAIL_UPDATE_TAG: "forced by the test"}
    deploy("two", **failing)  # the run's update rolls back ...
    deploy("two", **failing)  # ... and its retry is a new request, not the old one again
    operations = [op for op, _ in sent]
    tokens = [token for _, token in sent]
    assert operations == ["CreateStack", "UpdateStack", "UpdateStack"]
    assert len(set(tokens)) == 3, tokens
    for token in tokens:
        assert re.fullmatch(r"[a-zA-Z0-9][-a-zA-Z0-9]*", token) and len(token) <= 128
    assert tokens[0].startswith("tdv-run-created-") and tokens[1].startswith("tdv-run-updated-")


def test_operation_tokens_keep_a_resend_and_change_with_the_state() -> None:
    token = operation_token("tdv-run", "updated", "f1", "stack-1", "2025-01-01", "UPDATE_COMPLETE")
    assert token == operation_token("tdv-run", "updated", "f1", "stack-1", "2025-01-01",
                                    "UPDATE_COMPLETE")
    others = {operation_token("tdv-run", "created", "f1", "stack-1", "2025-01-01",
                              "UPDATE_COMPLETE"),
              operation_token("tdv-run", "updated", "f2", "stack-1", "2025-01-01",
                              "UPDATE_COMPLETE"),
              operation_token("tdv-run", "updated", "f1", "stack-1", "2025-01-02",
                              "UPDATE_ROLLBACK_COMPLETE"),
              operation_token("tdv-run2", "updated", "f1", "stack-1", "2025-01-01",
                              "UPDATE_COMPLETE")}
    assert token not in others and len(others) == 4
    long = operation_token("t" * 200, "recreated", None)
    assert len(long) == 128 and re.fullmatch(r"t+-recreated-[0-9a-f]{16}", long)


URL = "https://tdv-test-bucket.s3.amazonaws.com/t/template.json"


def _update_params(token: Any = ANY) -> dict[str, Any]:
    return {"StackName": "tdv-iris", "TemplateURL": URL, "Parameters": ANY,
            "Capabilities": ANY, "Tags": ANY, "ClientRequestToken": token}


def _stubbed_update(stubber: Stubber, before: dict[str, Any], after: dict[str, Any] | None,
                    error: str | None = None) -> None:
    stubber.add_response("describe_stacks", before)
    if error:
        stubber.add_client_error("update_stack", error, "A client request token already "
                                 "exists." if error.startswith("Token") else "Service busy",
                                 400 if error.startswith("Token") else 503,
                                 expected_params=_update_params())
    else:
        stubber.add_response("update_stack", {"StackId": stubbed_stacks.STACK_ID},
                             _update_params())
    if after is not None:
        stubber.add_response("describe_stacks", after)


def _update(client: Any) -> dict[str, Any]:
    return stacks.create_or_update(client, "tdv-iris", URL, _stage("two"), TAGS,
                                   client_request_token="tdv-run", poll_interval=0.01)


def test_a_resent_request_keeps_its_token() -> None:
    client = stubbed_stacks.client()
    old = stubbed_stacks.stack("UPDATE_COMPLETE", tags={stacks.FINGERPRINT_TAG: "old"},
                               updated_seconds=60)
    sent = _sent_tokens(client)
    with Stubber(client) as stubber:
        _stubbed_update(stubber, old, None, error="ServiceUnavailable")
        with pytest.raises(client.exceptions.ClientError, match="ServiceUnavailable"):
            _update(client)
        _stubbed_update(stubber, old, stubbed_stacks.stack("UPDATE_IN_PROGRESS"))
        assert _update(client)["operation"] == "updated"
        stubber.assert_no_pending_responses()
    assert sent[0] == sent[1] and sent[0][1].startswith("tdv-run-updated-")


def test_a_known_token_is_success_when_the_stack_carries_the_wanted_state() -> None:
    """CloudFormation answers ``TokenAlreadyExistsException`` (documented error of
    UpdateStack) to a token it already received: an earlier request went through."""
    client = stubbed_stacks.client()
    wanted = stacks.fingerprint(URL, _stage("two"), TAGS)
    old = stubbed_stacks.stack("UPDATE_COMPLETE", tags={stacks.FINGERPRINT_TAG: "old"})
    underway = stubbed_stacks.stack("UPDATE_IN_PROGRESS",
                                    tags={**TAGS, stacks.FINGERPRINT_TAG: wanted})
    with Stubber(client) as stubber:
        _stubbed_update(stubber, old, underway, error="TokenAlreadyExistsException")
        result = _update(client)
        stubber.assert_no_pending_responses()
    assert result == {"stack_id": stubbed_stacks.STACK_ID, "stack_name": "tdv-iris",
                      "stack_status": "UPDATE_IN_PROGRESS", "fingerprint": wanted,
                      "operation": "unchanged"}


def test_a_known_token_on_a_stack_without_the_wanted_state_fails_naming_it() -> None:
    client = stubbed_stacks.client()
    old = stubbed_stacks.stack("UPDATE_ROLLBACK_COMPLETE", tags={stacks.FINGERPRINT_TAG: "old"})
    with Stubber(client) as stubber:
        _stubbed_update(stubber, old, old, error="TokenAlreadyExistsException")
        with pytest.raises(StackFailedError) as caught:
            _update(client)
        stubber.assert_no_pending_responses()
    assert caught.value.status == "UPDATE_ROLLBACK_COMPLETE"
    assert "TokenAlreadyExistsException" in str(caught.value)
    assert "'tdv-run-updated-" in str(caught.value)
