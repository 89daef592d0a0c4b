"""Shared fixtures: one real moto server per test session, reset between tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tdv_airflow.local.aws import LocalAws

TEST_BUCKET = "tdv-test-bucket"
REGION = "us-east-1"


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    """The session's moto server; its endpoint is exported to boto3 and Airflow."""
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with LocalAws(log_path=log) as aws, pytest.MonkeyPatch.context() as mp:
        for name, value in aws.environ().items():
            mp.setenv(name, value)
        mp.delenv("AWS_PROFILE", raising=False)
        yield aws


@pytest.fixture
def aws(local_aws: LocalAws) -> LocalAws:
    """The moto server, emptied before the test."""
    local_aws.reset()
    return local_aws


@pytest.fixture
def boto_session(aws: LocalAws) -> Any:
    """A boto3 Session with the emulator's fake credentials."""
    import boto3

    return boto3.Session(
        aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )


@pytest.fixture
def s3(boto_session: Any, aws: LocalAws) -> Any:
    """An S3 client on the emulator."""
    return boto_session.client("s3", endpoint_url=aws.endpoint_url)


@pytest.fixture
def bucket(s3: Any) -> str:
    """An empty bucket on the emulator."""
    s3.create_bucket(Bucket=TEST_BUCKET)
    return TEST_BUCKET
