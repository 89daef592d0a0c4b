"""Recovery: the AWS endpoint stops answering in the middle of a deployment.

moto keeps its state in memory, so a killed server comes back empty. The honest
simulation of "the endpoint disappears, then comes back" is to freeze the server
process (SIGSTOP): calls time out, as they would against an unreachable endpoint; after
SIGCONT the same server (and state) answers again. The task must fail with a clear
:class:`AwsUnreachableError` naming the endpoint, and its retry must finish with one
stack, no duplicate, and no artifact beyond those of the first try.
"""

from __future__ import annotations

import os
import pickle
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tdv_airflow.exceptions import AwsUnreachableError
from tdv_airflow.local.aws import LocalAws
from testkit.aws_state import all_objects, live_stacks

#: Short timeouts, one attempt: a frozen endpoint fails the call within seconds.
FAST_FAIL = {"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 1}}


def prepro(payload: Any) -> Any:
    """The preprocessing function deployed."""
    return payload


@pytest.fixture
def own_aws(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAws]:
    """A dedicated emulator this test may freeze, exported as ``aws_default``."""
    with LocalAws(log_path=tmp_path / "moto.log") as aws:
        for name, value in aws.environ().items():
            monkeypatch.setenv(name, value)
        try:
            yield aws
        finally:
            assert aws.pid is not None
            os.kill(aws.pid, signal.SIGCONT)


def test_frozen_endpoint_fails_clearly_and_the_retry_leaves_no_duplicate(
        own_aws: LocalAws, task_context: Any) -> None:
    import boto3

    from tdv_airflow.operators import CreateStackOperator, PrepareDeploymentOperator

    session = boto3.Session(region_name="us-east-1")
    s3 = session.client("s3", endpoint_url=own_aws.endpoint_url)
    cfn = session.client("cloudformation", endpoint_url=own_aws.endpoint_url)
    s3.create_bucket(Bucket="tdv-recovery")
    s3.put_object(Bucket="tdv-recovery", Key="models/iris/v1/model.pkl",
                  Body=pickle.dumps({"w": [1, 2]}))
    prepare = PrepareDeploymentOperator(
        task_id="prepare", bucket="tdv-recovery", model_s3_key="models/iris/v1/model.pkl",
        prepro_fn=prepro, botocore_config=FAST_FAIL)
    response = prepare.execute(task_context())
    uploaded = all_objects(s3)

    def create() -> dict[str, Any]:
        return CreateStackOperator(
            task_id="create", prepare_env_response=response, stack_name="tdv-recovery",
            wait_for_completion=True, poll_interval=0.2, botocore_config=FAST_FAIL,
        ).execute(task_context())

    assert own_aws.pid is not None
    os.kill(own_aws.pid, signal.SIGSTOP)
    try:
        with pytest.raises(AwsUnreachableError) as caught:
            create()
    finally:
        os.kill(own_aws.pid, signal.SIGCONT)
    message = str(caught.value)
    assert own_aws.endpoint_url in message and "stack 'tdv-recovery'" in message, message
    assert "retry" in message

    # the endpoint is back (same state): the retry of the task finishes the job
    result = create()
    assert result["stack_name"] == "tdv-recovery"
    assert result["stack_status"] in {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
    assert live_stacks(cfn) == ["tdv-recovery"]
    assert all_objects(s3) == uploaded
    # and a further retry (and the prepare's retry) sends nothing new
    assert prepare.execute(task_context()) == response
    assert create()["stack_id"] == result["stack_id"]
    assert live_stacks(cfn) == ["tdv-recovery"]
    assert all_objects(s3) == uploaded
