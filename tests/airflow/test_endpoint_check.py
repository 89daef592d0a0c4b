"""EndpointCheckOperator against a stack deployed on the emulator by the provider's own
operators (created, validated, promoted): a good answer, a wrong prediction, a wrong
status, strings versus numbers.

The emulator runs no Lambda, so the operator runs the deployed function locally from the
artifacts in S3 (the model below sums each row, and needs only dill, from the layer).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tdv_airflow.exceptions import EndpointCheckError, InvalidInputError, StackNotFoundError
from tdv_airflow.local.aws import LocalAws
from tdv_airflow.operators import (
    CreateStackOperator,
    EndpointCheckOperator,
    PrepareDeploymentOperator,
    PromoteOperator,
    ValidateCandidateOperator,
)
from tdv_airflow.operators.checks import same_prediction
from testkit.aws_state import all_objects, live_stacks
from testkit.models import put_model, rows_of
from testkit.task_context import FakeTaskInstance

STACK = "tdv-checked"
BUCKET = "tdv-endpoint-check"
ROWS = {"rows": [[1, 2], [3, 4.5]]}
SUMS = [3.0, 7.5]


def _context() -> dict[str, Any]:
    ti = FakeTaskInstance()
    return {"ti": ti, "run_id": ti.run_id, "dag_id": ti.dag_id, "params": {}}


@dataclass
class Deployed:
    """The stack deployed for the module, and the emulator's clients."""

    cfn: Any
    s3: Any
    workdir: Path


@pytest.fixture(scope="module")
def deployed(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """One stack for the module (its tests only read it: the emulator is not reset)."""
    import boto3
    from airflow.sdk.bases.operator import ExecutorSafeguard

    local_aws.reset()
    session = boto3.Session(region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=local_aws.endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    key = "models/sum/v1/model.pkl"
    put_model(s3, BUCKET, key)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ExecutorSafeguard, "test_mode", True)
        prepared = PrepareDeploymentOperator(
            task_id="prepare", bucket=BUCKET, model_s3_key=key, prepro_fn=rows_of
        ).execute(_context())
        created = CreateStackOperator(
            task_id="create", prepare_env_response=prepared, stack_name=STACK,
            endpoint_auth="iam", wait_for_completion=True, poll_interval=0.2,
        ).execute(_context())
        version = ValidateCandidateOperator(
            task_id="validate", stack_name=STACK, identity=created["identity"],
            requests=[{"payload": ROWS, "expected_predictions": SUMS}]).execute(_context())
        PromoteOperator(task_id="promote", stack_name=STACK, version=version["version"],
                        deferrable=False).execute(_context())
    assert created["stack_status"] == "CREATE_COMPLETE"
    return Deployed(session.client("cloudformation", endpoint_url=local_aws.endpoint_url),
                    s3, tmp_path_factory.mktemp("local-run"))


@pytest.fixture
def run_dir(deployed: Deployed, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployed]:
    """The deployed stack, with the local runner's layouts in a temporary folder."""
    monkeypatch.setenv("TDV_LOCAL_RUN_DIR", str(deployed.workdir))
    yield deployed


def _check(**kwargs: Any) -> EndpointCheckOperator:
    return EndpointCheckOperator(**{"task_id": "smoke", "stack_name": STACK,
                                    "payload": ROWS, **kwargs})


def test_a_good_answer_returns_what_was_checked(run_dir: Deployed) -> None:
    stacks_before, objects_before = live_stacks(run_dir.cfn), all_objects(run_dir.s3)
    result = _check(expected_predictions=[3, 7.5]).execute(_context())
    outputs = {o["OutputKey"]: o["OutputValue"] for o in
               run_dir.cfn.describe_stacks(StackName=STACK)["Stacks"][0]["Outputs"]}
    assert result == {"stack_name": STACK, "api_endpoint": outputs["ApiEndpoint"],
                      "status": 200, "predictions": SUMS}
    # retry-safe: it only reads, and a retry answers the same
    assert _check(expected_predictions=[3, 7.5]).execute(_context()) == result
    assert live_stacks(run_dir.cfn) == stacks_before
    assert all_objects(run_dir.s3) == objects_before


def test_without_expected_predictions_any_prediction_passes(run_dir: Deployed) -> None:
    assert _check().execute(_context())["predictions"] == SUMS


def test_a_wrong_prediction_fails_quoting_the_answer(run_dir: Deployed) -> None:
    with pytest.raises(EndpointCheckError) as caught:
        _check(expected_predictions=[3, 7]).execute(_context())
    message = str(caught.value)
    assert "predictions [3.0, 7.5], expected [3, 7]" in message
    assert STACK in message and '"predictions"' in message, message


def test_tolerance_lets_close_numbers_pass(run_dir: Deployed) -> None:
    close = [3.04, 7.46]
    assert _check(expected_predictions=close, tolerance=0.05).execute(
        _context())["predictions"] == SUMS
    with pytest.raises(EndpointCheckError, match=r"within 0\.01"):
        _check(expected_predictions=close, tolerance=0.01).execute(_context())


def test_a_wrong_status_fails_quoting_the_answer(run_dir: Deployed) -> None:
    bad = {"rows": [["not", "numbers"]]}
    with pytest.raises(EndpointCheckError) as caught:
        _check(payload=bad).execute(_context())
    message = str(caught.value)
    assert "status 422, expected 200" in message
    assert "rejected" in message, message  # the answer's own body is quoted
    result = _check(payload=bad, expected_status=422).execute(_context())
    assert result["status"] == 422 and result["predictions"] is None


def test_a_string_never_equals_a_number(run_dir: Deployed) -> None:
    with pytest.raises(EndpointCheckError, match=r'expected \["3\.0", "7\.5"\]'):
        _check(expected_predictions=["3.0", "7.5"]).execute(_context())
    assert not same_prediction("2", 2, 0.5) and not same_prediction(2, "2", 0.5)
    assert not same_prediction(True, 1, 0.0) and not same_prediction(1, True, 0.0)
    assert same_prediction(2, 2.0, 0.0) and same_prediction([[1, "a"]], [[1.0, "a"]], 0.0)
    assert not same_prediction([1, 2], [1], 0.0)
    assert same_prediction({"p": 0.51}, {"p": 0.5}, 0.02)


def test_a_missing_stack_fails_clearly(run_dir: Deployed) -> None:
    with pytest.raises(StackNotFoundError, match="tdv-never-deployed"):
        _check(stack_name="tdv-never-deployed").execute(_context())


@pytest.mark.parametrize(("kwargs", "texts"), [
    ({"stack_name": "has_underscore"}, ("has_underscore", "A-Za-z")),
    ({"expected_predictions": 42}, ("42", "expected_predictions")),
    ({"expected_predictions": "abc"}, ("abc", "expected_predictions")),
    ({"expected_status": 99}, ("99", "expected_status")),
    ({"expected_status": "200"}, ("'200'", "expected_status")),
    ({"tolerance": -1}, ("-1", "tolerance")),
])
def test_bad_literals_are_refused_at_parse_time(kwargs: dict[str, Any],
                                                texts: tuple[str, ...]) -> None:
    with pytest.raises(InvalidInputError) as caught:
        _check(**kwargs)
    for text in texts:
        assert text in str(caught.value)


def test_templated_arguments_render_and_are_checked_when_the_task_runs(
        run_dir: Deployed) -> None:
    from airflow.sdk import DAG

    with DAG("tdv_check_templates", schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC),
             render_template_as_native_obj=True) as dag:
        op = EndpointCheckOperator(task_id="smoke", stack_name="{{ params.stack }}",
                                   payload="{{ params.payload }}",
                                   expected_predictions="{{ params.expected }}",
                                   aws_conn_id="{{ params.conn }}", verify="{{ params.verify }}")
    assert set(op.template_fields) >= {"stack_name", "payload", "expected_predictions",
                                       "aws_conn_id", "region_name", "verify"}
    params = {"stack": STACK, "payload": ROWS, "expected": [3, 7.5], "conn": "aws_default",
              "verify": None}
    op.render_template_fields({"params": params, "dag": dag})
    assert (op.stack_name, op.payload, op.expected_predictions) == (STACK, ROWS, [3, 7.5])
    assert op.execute(_context())["predictions"] == SUMS
    op.stack_name = "bad_name"  # as a template could render it
    with pytest.raises(InvalidInputError, match="bad_name"):
        op.execute(_context())


def test_on_aws_the_request_is_sent_to_the_endpoint_signed_as_its_mode_needs(
        run_dir: Deployed, local_aws: LocalAws, monkeypatch: pytest.MonkeyPatch) -> None:
    """The AWS branch, against the local stand-in of the stack's API verifying the SigV4
    signature as API Gateway does (known signers only): the stack's endpoint is pointed
    there."""
    import boto3

    from tdv_airflow import UserAwsAuth
    from tdv_airflow.core.clients import AwsClients
    from tdv_airflow.endpoint.verify import EndpointAuthenticator
    from testkit.deployed import serving

    emulator = AwsClients.from_auth(UserAwsAuth("testing", "testing",
                                                endpoint_url=local_aws.endpoint_url),
                                    "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    session = boto3.Session(region_name="us-east-1")
    on_aws = AwsClients(session.client, "us-east-1")  # AWS's own endpoints: never called
    assert on_aws.emulator_endpoint is None
    stack = run_dir.cfn.describe_stacks(StackName=STACK)["Stacks"][0]
    op = _check(expected_predictions=SUMS)
    strict = EndpointAuthenticator.for_stack(emulator, STACK, accept_unknown_signers=False)
    with serving(emulator, STACK, run_dir.workdir, auth=strict) as server:
        stack["Outputs"] = [{**o, "OutputValue": server.url} if o["OutputKey"] == "ApiEndpoint"
                            else o for o in stack["Outputs"]]
        assert op._call(on_aws, stack) == (200, '{"predictions": [3.0, 7.5]}')
        unsigned = _check()
        unsigned.aws_conn_id = None
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDOTHERKEY")
        status, body = unsigned._call(on_aws, stack)
    assert status == 403, body  # signed, by the connection's identity, with an unknown key
