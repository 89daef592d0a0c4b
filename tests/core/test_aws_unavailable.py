"""``aws_reachable``: AWS throttling or failing past botocore's retries becomes one
:exc:`AwsUnavailableError` naming the endpoint, the step, the code, the status and the
attempts; other AWS errors pass unchanged. Against a local endpoint that always refuses.
"""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.core.clients import AwsClients, aws_reachable, botocore_config
from tdv_airflow.core.store import upload_artifact
from tdv_airflow.exceptions import AwsUnavailableError, AwsUnreachableError
from tests.core.throttling_server import Script, refusing_endpoint


def clients(url: str, max_attempts: int = 1) -> AwsClients:
    """The core's clients on ``url``, retrying ``max_attempts`` times (kept low: botocore
    waits up to 1, 2, 4 ... s between throttled attempts)."""
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")
    config = botocore_config({"retries": {"max_attempts": max_attempts}})
    return AwsClients(lambda service: session.client(service, endpoint_url=url,
                                                     config=config), "us-east-1")


@pytest.mark.parametrize(("status", "code"), [
    (400, "Throttling"), (503, "ServiceUnavailable"), (502, "SomethingNew")])
def test_throttling_past_the_retries_names_everything(status: int, code: str) -> None:
    script = Script(refusals=None, status=status, code=code)
    with refusing_endpoint(script) as url, pytest.raises(AwsUnavailableError) as info:
        with aws_reachable("wait for stack 'tdv-iris'"):
            clients(url, max_attempts=2).cloudformation.describe_stacks(StackName="tdv-iris")
    error = info.value
    assert len(script.seen) == 3 == error.attempts
    assert (error.endpoint_url, error.code, error.status) == (url, code, status)
    message = str(error)
    for text in (url, "wait for stack 'tdv-iris'", code, f"HTTP {status}", "3 attempts",
                 "safe to retry"):
        assert text in message, message
    assert isinstance(error, AwsUnreachableError)
    assert isinstance(error.__cause__, ClientError)


def test_an_upload_s_error_is_seen_through(tmp_path: Any) -> None:
    """S3 answers 503 to everything: the upload's ArtifactError becomes the clear error."""
    script = Script(refusals=None, status=503, code="SlowDown")
    with refusing_endpoint(script) as url, pytest.raises(AwsUnavailableError) as info:
        with aws_reachable("prepare of s3://tdv-models/iris/model.pkl"):
            upload_artifact(clients(url).s3, "tdv-models", "tdv-airflow",
                            Artifact("template", "stack_template.json", b"{}"))
    message = str(info.value)
    for text in (url, "prepare of s3://tdv-models/iris/model.pkl", "HTTP 503", "2 attempts"):
        assert text in message, message


def test_the_endpoint_argument_wins_and_a_plain_client_says_the_aws_endpoint() -> None:
    script = Script(refusals=None, status=400, code="Throttling")
    with refusing_endpoint(script) as url:
        plain = boto3.client("cloudformation", endpoint_url=url, region_name="us-east-1",
                             aws_access_key_id="t", aws_secret_access_key="t",
                             config=botocore_config({"retries": {"total_max_attempts": 1}}))
        with pytest.raises(AwsUnavailableError, match="^the AWS endpoint answered Throttling"):
            with aws_reachable("create of stack 'tdv-iris'"):
                plain.describe_stacks()
        with pytest.raises(AwsUnavailableError, match="^https://cloudformation.example"):
            with aws_reachable("create of stack 'tdv-iris'",
                               endpoint="https://cloudformation.example"):
                plain.describe_stacks()


@pytest.mark.parametrize(("status", "code"), [(403, "AccessDenied"),
                                              (400, "ValidationError"),
                                              (400, "LimitExceededException")])
def test_other_aws_errors_pass_unchanged(status: int, code: str) -> None:
    script = Script(refusals=None, status=status, code=code)
    with refusing_endpoint(script) as url, pytest.raises(ClientError) as info:
        with aws_reachable("create of stack 'tdv-iris'"):
            clients(url).cloudformation.describe_stacks()
    assert type(info.value) is not AwsUnavailableError
    assert info.value.response["Error"]["Code"] == code


def test_a_refused_connection_is_still_unreachable() -> None:
    from tdv_airflow.local.aws import free_port

    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(AwsUnreachableError) as info:
        with aws_reachable("delete of stack 'tdv-iris'"):
            clients(url, max_attempts=0).cloudformation.describe_stacks()
    assert type(info.value) is AwsUnreachableError
    assert "could not reach" in str(info.value) and url in str(info.value)
