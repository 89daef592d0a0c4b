"""``tdv_airflow.local.fix_multipart_uploads``: an incomplete multipart upload is listed with
the time it was created, and a part sent to an upload that does not exist is
``NoSuchUpload`` (404), as on AWS.

Against moto as it is and moto with only this fix: moto alone dates every upload
2010-11-10 (so the core's stale-upload cleanup would abort a concurrent run's upload
started a moment ago) and answers 500; with the fix, an upload is dated between the
clock readings taken around its creation, the cleanup leaves a fresh upload alone at
its one-hour age and aborts it at age 0, and the refusals are moto's ``NoSuchUpload``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tdv_airflow.core.multipart import STALE_UPLOAD_AGE, abort_stale_uploads
from tests.local.conftest import Moto

BUCKET = "tdv-fix-multipart-uploads"
KEY = "tdv-airflow/layer/0123abcd/layer.zip"
MIB = 1024 * 1024
#: One attempt: a 500 is shown as moto answered it, not retried.
ONE_ATTEMPT = Config(retries={"mode": "standard", "max_attempts": 1})


def s3_of(moto: Moto) -> Any:
    """An S3 client on ``moto`` (one attempt per call), with the test bucket."""
    s3 = moto.session.client("s3", endpoint_url=moto.aws.endpoint_url, config=ONE_ATTEMPT)
    s3.create_bucket(Bucket=BUCKET)
    return s3


@pytest.fixture(scope="module")
def plain(moto_with: Callable[[tuple[str, ...]], Moto]) -> Any:
    return s3_of(moto_with(()))


@pytest.fixture(scope="module")
def fixed(moto_with: Callable[[tuple[str, ...]], Moto]) -> Any:
    return s3_of(moto_with(("fix_multipart_uploads",)))


@pytest.fixture(autouse=True)
def no_uploads_left(plain: Any, fixed: Any) -> None:
    """Every test starts with no incomplete upload on either server."""
    for s3 in (plain, fixed):
        for upload in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"],
                                      UploadId=upload["UploadId"])


def listed(s3: Any, prefix: str = "") -> dict[str, datetime]:
    """``{upload id: Initiated}`` of the bucket's incomplete uploads under ``prefix``."""
    answer = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=prefix)
    return {u["UploadId"]: u["Initiated"] for u in answer.get("Uploads", [])}


def refusal(call: Callable[[], Any]) -> tuple[int, str]:
    """The HTTP status and error code ``call`` is refused with."""
    with pytest.raises(ClientError) as info:
        call()
    return (info.value.response["ResponseMetadata"]["HTTPStatusCode"],
            info.value.response["Error"]["Code"])


def calls_on_a_gone_upload(s3: Any) -> dict[str, Callable[[], Any]]:
    """The calls naming an upload id that was aborted, or never existed."""
    aborted = s3.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    s3.abort_multipart_upload(Bucket=BUCKET, Key=KEY, UploadId=aborted)
    s3.put_object(Bucket=BUCKET, Key="source", Body=b"s")
    return {
        "UploadPart (aborted)": lambda: s3.upload_part(
            Bucket=BUCKET, Key=KEY, UploadId=aborted, PartNumber=1, Body=b"x"),
        "UploadPart (unknown)": lambda: s3.upload_part(
            Bucket=BUCKET, Key=KEY, UploadId="no-such-upload", PartNumber=1, Body=b"x"),
        "UploadPartCopy (unknown)": lambda: s3.upload_part_copy(
            Bucket=BUCKET, Key=KEY, UploadId="no-such-upload", PartNumber=1,
            CopySource=f"{BUCKET}/source"),
        "CompleteMultipartUpload (aborted)": lambda: s3.complete_multipart_upload(
            Bucket=BUCKET, Key=KEY, UploadId=aborted,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"x"'}]}),
        "AbortMultipartUpload (aborted)": lambda: s3.abort_multipart_upload(
            Bucket=BUCKET, Key=KEY, UploadId=aborted),
    }


def test_moto_alone_dates_every_upload_2010_and_answers_500(plain: Any) -> None:
    """What the fix is for; when moto changes, this fails and the fix can go."""
    upload = plain.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    assert listed(plain) == {upload: datetime(2010, 11, 10, 20, 48, 33, tzinfo=UTC)}
    assert abort_stale_uploads(plain, BUCKET, KEY) == (1, 1), "a fresh upload was kept"
    refused = {name: refusal(call) for name, call in calls_on_a_gone_upload(plain).items()}
    assert refused["AbortMultipartUpload (aborted)"] == (404, "NoSuchUpload")
    assert {status for name, (status, _) in refused.items()
            if not name.startswith("Abort")} == {500}


def test_with_the_fix_an_upload_is_listed_with_the_time_it_was_created(fixed: Any) -> None:
    before = datetime.now(UTC)
    first = fixed.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    second = fixed.create_multipart_upload(Bucket=BUCKET, Key=f"{KEY}.other")["UploadId"]
    after = datetime.now(UTC)
    times = listed(fixed)
    assert set(times) == {first, second}
    # S3 (and moto) write times to the second: the server cuts its clock, never later
    assert before.replace(microsecond=0) <= times[first] <= times[second] <= after
    assert listed(fixed, prefix=f"{KEY}.") == {second: times[second]}, "Prefix ignored"
    assert listed(fixed) == times, "an upload's time changed between two listings"


def test_with_the_fix_the_core_leaves_a_fresh_upload_alone(fixed: Any) -> None:
    """Another run sending the same content-addressed key right now."""
    running = fixed.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    assert abort_stale_uploads(fixed, BUCKET, KEY, STALE_UPLOAD_AGE) == (1, 0)
    assert list(listed(fixed)) == [running]
    assert abort_stale_uploads(fixed, BUCKET, KEY, timedelta(0)) == (1, 1)
    assert listed(fixed) == {}


def test_with_the_fix_a_gone_upload_is_no_such_upload(fixed: Any) -> None:
    refused = {name: refusal(call) for name, call in calls_on_a_gone_upload(fixed).items()}
    assert refused == dict.fromkeys(refused, (404, "NoSuchUpload"))
    with pytest.raises(ClientError, match="NoSuchBucket"):
        fixed.upload_part(Bucket="tdv-no-such-bucket", Key=KEY, UploadId="x", PartNumber=1,
                          Body=b"x")


def test_with_the_fix_a_whole_upload_still_completes_once_and_idempotently(fixed: Any
                                                                           ) -> None:
    upload = fixed.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    bodies = [b"a" * (5 * MIB), b"b" * 7]
    parts = [{"PartNumber": n, "ETag": fixed.upload_part(
        Bucket=BUCKET, Key=KEY, UploadId=upload, PartNumber=n, Body=body)["ETag"]}
        for n, body in enumerate(bodies, start=1)]
    for _ in range(2):  # completing a completed upload again answers the same object
        done = fixed.complete_multipart_upload(Bucket=BUCKET, Key=KEY, UploadId=upload,
                                               MultipartUpload={"Parts": parts})
        assert done["ETag"].endswith('-2"')
    assert fixed.get_object(Bucket=BUCKET, Key=KEY)["Body"].read() == b"".join(bodies)
    assert listed(fixed) == {}
    assert refusal(lambda: fixed.upload_part(Bucket=BUCKET, Key=KEY, UploadId=upload,
                                             PartNumber=3, Body=b"late")) == (
        404, "NoSuchUpload")
