"""Ending incomplete multipart uploads under the published identity policy, on an emulator
that enforces IAM (see ``tests/core/test_iam.py`` for the emulator and what it checks).

A user holding exactly :func:`~tdv_airflow.core.iam.airflow_identity_policy` uploads a
large artifact in parts where a dead run left an incomplete upload of the same key: it
lists the key's incomplete uploads (``ListIncompleteUploads``: ``s3:ListBucketMultipartUploads``
on the bucket), aborts the stale one (``EndIncompleteUploads``: ``s3:AbortMultipartUpload``
on the artifact prefix, as ``WriteArtifacts``' ``s3:PutObject``) and sends the parts. The
same calls are refused outside the artifact prefix and in another bucket, and ``ListParts``
(``s3:ListMultipartUploadParts``), which tdv-airflow never calls, is refused. Without each
of the two statements exactly its call is refused; the upload still succeeds (the cleanup
is best effort, a warning is logged) and the stale upload is left to the bucket's
lifecycle rule (``docs/storage.md``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.core.store import artifact_key, upload_artifact
from testkit.iam_moto import IamMoto
from testkit.models import access_denied
from tests.core.test_iam import MULTIPART_SIDS, for_moto, published_policy
from tests.core.test_iam import iam_aws as iam_aws  # noqa: F401 - the fixture, re-exported

BUCKET, OTHER_BUCKET = "tdv-iam-multipart", "tdv-iam-multipart-other"
MIB = 1024 * 1024
#: moto wants parts of 5 MiB at least, as S3: an 11 MiB artifact goes in 3 parts.
SMALL: dict[str, Any] = {"multipart_threshold": 6 * MIB, "part_size": 5 * MIB}
LAYER = Artifact("layer", "layer.zip", bytes(range(251)) * (11 * MIB // 251 + 1))
KEY = artifact_key("tdv-airflow", LAYER)


@pytest.fixture(scope="module")
def admin_s3(iam_aws: IamMoto) -> Any:  # noqa: F811 - the imported fixture
    """The administrator's S3 client, with the two buckets."""
    s3 = iam_aws.client("s3")
    for bucket in (BUCKET, OTHER_BUCKET):
        s3.create_bucket(Bucket=bucket)
    return s3


def user_s3(iam_aws: IamMoto, name: str, drop: str | None = None) -> Any:  # noqa: F811
    """The S3 client of a new user holding the published policy (minus ``drop``)."""
    session = iam_aws.user(name, for_moto(published_policy(BUCKET, "tdv-cfn-deployer",
                                                           drop)))
    return session.client("s3", endpoint_url=iam_aws.aws.endpoint_url)


def uploads_of(s3: Any, bucket: str, key: str) -> list[str]:
    """The ids of the incomplete uploads of exactly ``key``."""
    listed = s3.list_multipart_uploads(Bucket=bucket, Prefix=key).get("Uploads", [])
    return [u["UploadId"] for u in listed if u["Key"] == key]


def refused(call: Callable[[], Any]) -> bool:
    """Whether ``call`` is refused by IAM (another error or none: allowed)."""
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - a refusal or any other answer is recorded
        return access_denied(exc)
    return False


def test_the_policy_ends_a_stale_upload_and_uploads_in_parts(iam_aws: IamMoto,  # noqa: F811
                                                              admin_s3: Any) -> None:
    stale = admin_s3.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    s3 = user_s3(iam_aws, "multipart-allowed")
    assert upload_artifact(s3, BUCKET, "tdv-airflow", LAYER, stale_age=timedelta(0),
                           **SMALL) == (KEY, True)
    assert uploads_of(admin_s3, BUCKET, KEY) == [], f"{stale} was not aborted"
    head = admin_s3.head_object(Bucket=BUCKET, Key=KEY)
    assert head["ETag"].endswith('-3"') and head["Metadata"] == {"sha256": LAYER.sha256}
    admin_s3.delete_object(Bucket=BUCKET, Key=KEY)


def test_the_multipart_calls_are_refused_outside_the_artifacts(iam_aws: IamMoto,  # noqa: F811
                                                               admin_s3: Any) -> None:
    s3 = user_s3(iam_aws, "multipart-elsewhere")
    outside = "elsewhere/layer.zip"
    ids = {(bucket, key): admin_s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
           for bucket, key in ((BUCKET, outside), (OTHER_BUCKET, KEY), (BUCKET, KEY))}
    calls = {
        "abort outside the prefix": lambda: s3.abort_multipart_upload(
            Bucket=BUCKET, Key=outside, UploadId=ids[BUCKET, outside]),
        "abort in another bucket": lambda: s3.abort_multipart_upload(
            Bucket=OTHER_BUCKET, Key=KEY, UploadId=ids[OTHER_BUCKET, KEY]),
        "list another bucket's uploads": lambda: s3.list_multipart_uploads(
            Bucket=OTHER_BUCKET, Prefix=KEY),
        "start an upload outside the prefix": lambda: s3.create_multipart_upload(
            Bucket=BUCKET, Key=outside),
        "list the parts of an artifact's upload": lambda: s3.list_parts(
            Bucket=BUCKET, Key=KEY, UploadId=ids[BUCKET, KEY]),
    }
    assert {name: refused(call) for name, call in calls.items()} == dict.fromkeys(calls, True)
    assert uploads_of(admin_s3, BUCKET, outside) == [ids[BUCKET, outside]]
    assert uploads_of(admin_s3, OTHER_BUCKET, KEY) == [ids[OTHER_BUCKET, KEY]]
    for (bucket, key), upload in ids.items():
        admin_s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)


@pytest.mark.parametrize("sid", MULTIPART_SIDS)
def test_without_each_statement_its_call_is_refused_and_the_upload_goes_on(
        iam_aws: IamMoto, admin_s3: Any, sid: str,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    stale = admin_s3.create_multipart_upload(Bucket=BUCKET, Key=KEY)["UploadId"]
    s3 = user_s3(iam_aws, f"multipart-without-{sid}", drop=sid)
    with caplog.at_level(logging.WARNING, logger="tdv_airflow.core.multipart"):
        assert upload_artifact(s3, BUCKET, "tdv-airflow", LAYER, stale_age=timedelta(0),
                               **SMALL) == (KEY, True)
    warned = "could not list" if sid == "ListIncompleteUploads" else "could not abort"
    assert warned in caplog.text and "AccessDenied" in caplog.text
    assert uploads_of(admin_s3, BUCKET, KEY) == [stale], "the lifecycle rule's to end"
    calls = {
        "ListIncompleteUploads": lambda: s3.list_multipart_uploads(Bucket=BUCKET, Prefix=KEY),
        "EndIncompleteUploads": lambda: s3.abort_multipart_upload(Bucket=BUCKET, Key=KEY,
                                                                  UploadId=stale),
    }
    assert {name: refused(call) for name, call in calls.items()} == {
        name: name == sid for name in calls}
    admin_s3.delete_object(Bucket=BUCKET, Key=KEY)
    for upload in uploads_of(admin_s3, BUCKET, KEY):
        admin_s3.abort_multipart_upload(Bucket=BUCKET, Key=KEY, UploadId=upload)
