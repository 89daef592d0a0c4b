"""The content-addressed store's S3 helpers on the emulator; a 403 through botocore's Stubber."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from tdv_airflow.core.store import object_exists


def test_object_exists_tells_present_from_missing(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="models/iris/model.pkl", Body=b"model")
    assert object_exists(s3, bucket, "models/iris/model.pkl") is True
    assert object_exists(s3, bucket, "models/iris/other.pkl") is False


def test_object_exists_raises_on_other_errors(s3: Any) -> None:
    """Access denied must not pass for "not there yet" (the emulator never refuses)."""
    stub = Stubber(s3)
    stub.add_client_error("head_object", service_error_code="403",
                          service_message="Forbidden", http_status_code=403)
    with stub, pytest.raises(ClientError, match="403"):
        object_exists(s3, "tdv-test-bucket", "models/iris/model.pkl")
    stub.assert_no_pending_responses()
