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


def _bucket_in(boto_session: Any, aws: Any, name: str, region: str) -> None:
    s3 = boto_session.client("s3", endpoint_url=aws.endpoint_url, region_name=region)
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})


def test_a_bucket_in_another_region_is_refused_naming_both(boto_session: Any, aws: Any,
                                                            s3: Any, bucket: str) -> None:
    """The emulator keeps each bucket's region and answers HeadBucket with it, as S3 does."""
    from tdv_airflow.core.store import bucket_region, check_bucket
    from tdv_airflow.exceptions import InvalidInputError

    _bucket_in(boto_session, aws, "tdv-eu-models", "eu-west-1")
    assert bucket_region(s3, "tdv-eu-models") == "eu-west-1"
    assert bucket_region(s3, bucket) == "us-east-1"
    check_bucket(s3, bucket, "us-east-1")
    check_bucket(s3, "tdv-eu-models", "eu-west-1")
    check_bucket(s3, "tdv-eu-models")  # no region: not checked
    with pytest.raises(InvalidInputError) as info:
        check_bucket(s3, "tdv-eu-models", "us-east-1")
    message = str(info.value)
    for text in ("'tdv-eu-models'", "eu-west-1", "us-east-1", "function's own region"):
        assert text in message, message


@pytest.mark.parametrize(("location", "region"), [
    (None, "us-east-1"), ("EU", "eu-west-1"), ("ap-south-1", "ap-south-1")])
def test_without_a_region_in_head_bucket_get_bucket_location_decides(
        s3: Any, location: str | None, region: str) -> None:
    """GetBucketLocation's documented answers: no constraint for us-east-1, ``EU`` for
    the old name of eu-west-1 (an S3-compatible store may name no region in HeadBucket)."""
    from tdv_airflow.core.store import bucket_region

    stub = Stubber(s3)
    stub.add_response("head_bucket", {}, {"Bucket": "b-1"})
    answer = {} if location is None else {"LocationConstraint": location}
    stub.add_response("get_bucket_location", answer, {"Bucket": "b-1"})
    with stub:
        assert bucket_region(s3, "b-1") == region
    stub.assert_no_pending_responses()


def test_bucket_region_reads_the_redirect_header_of_s3(s3: Any) -> None:
    """A HeadBucket answer whose region is only in ``x-amz-bucket-region`` (botocore
    versions that do not parse ``BucketRegion``)."""
    from tdv_airflow.core.store import bucket_region

    head = {"ResponseMetadata": {"HTTPHeaders": {"x-amz-bucket-region": "sa-east-1"}}}
    assert bucket_region(s3, "b-1", head) == "sa-east-1"
