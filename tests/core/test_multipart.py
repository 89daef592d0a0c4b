"""Multipart uploads of large artifacts on the embedded AWS: round trip, nothing sent
twice, an abort on every failure (faults injected through botocore's own event hooks),
stale uploads of a key ended, encryption carried.

moto requires parts of at least 5 MiB (as S3 does), so these use a 6 MiB threshold and
5 MiB parts instead of the 16 MiB / 8 MiB defaults.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest

from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.core.store import artifact_key, object_sha256, upload_artifact
from tdv_airflow.exceptions import ArtifactError

MIB = 1024 * 1024
SMALL: dict[str, Any] = {"multipart_threshold": 6 * MIB, "part_size": 5 * MIB}
#: 11 MiB of varied bytes: three parts (5, 5, 1 MiB).
LAYER = Artifact("layer", "layer.zip", bytes(range(251)) * (11 * MIB // 251 + 1))


def calls(s3: Any) -> Counter[str]:
    """Count the requests ``s3`` sends, by operation name (botocore's ``before-send``)."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def count(event_name: str, **_: Any) -> None:
        with lock:
            seen[event_name.rsplit(".", 1)[-1]] += 1

    s3.meta.events.register("before-send.s3", count)
    return seen


def assert_nothing_left(s3: Any, bucket: str, key: str) -> None:
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0, f"{key} was written"


def test_a_large_artifact_goes_in_parts_and_round_trips(s3: Any, bucket: str) -> None:
    sent = calls(s3)
    key, uploaded = upload_artifact(s3, bucket, "tdv-airflow", LAYER, **SMALL)
    assert (key, uploaded) == (artifact_key("tdv-airflow", LAYER), True)
    assert sent["CreateMultipartUpload"] == 1 and sent["UploadPart"] == 3
    assert sent["CompleteMultipartUpload"] == 1 and sent["PutObject"] == 0
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ETag"].endswith('-3"'), "not a multipart object"
    assert head["Metadata"] == {"sha256": LAYER.sha256}
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == LAYER.data
    # its SHA-256 is a composite one (a checksum of the parts' checksums): streamed
    assert object_sha256(s3, bucket, key) == LAYER.sha256

    sent.clear()
    assert upload_artifact(s3, bucket, "tdv-airflow", LAYER, **SMALL) == (key, False)
    assert set(sent) == {"HeadObject"}, "a second upload sent something"


def test_below_the_threshold_one_put_object(s3: Any, bucket: str) -> None:
    sent = calls(s3)
    small = Artifact("prepro_fn", "prepro_fn.pkl", b"x" * (6 * MIB - 1))
    key, _ = upload_artifact(s3, bucket, "tdv-airflow", small, **SMALL)
    assert sent["PutObject"] == 1 and sent["CreateMultipartUpload"] == 0
    assert object_sha256(s3, bucket, key) == small.sha256


def test_a_part_refused_aborts_the_upload_and_names_the_artifact(s3: Any, bucket: str
                                                                  ) -> None:
    """The 2nd part is sent as part number 0, which S3 refuses (moto: ``NoSuchUpload``)."""
    def misnumber(request: Any, **_: Any) -> None:
        request.url = re.sub(r"partNumber=2\b", "partNumber=0", request.url)

    s3.meta.events.register("before-send.s3.UploadPart", misnumber)
    key = artifact_key("tdv-airflow", LAYER)
    with pytest.raises(ArtifactError) as info:
        upload_artifact(s3, bucket, "tdv-airflow", LAYER, **SMALL)
    for text in ("layer", f"s3://{bucket}/{key}", "UploadPart"):
        assert text in str(info.value)
    assert_nothing_left(s3, bucket, key)


def test_a_crash_in_a_part_thread_aborts_the_upload(s3: Any, bucket: str) -> None:
    sent = calls(s3)

    def cut(request: Any, **_: Any) -> None:
        if re.search(r"partNumber=2\b", request.url):
            raise RuntimeError("connection cut by the test")

    s3.meta.events.register("before-send.s3.UploadPart", cut)
    with pytest.raises(RuntimeError, match="cut by the test"):
        upload_artifact(s3, bucket, "tdv-airflow", LAYER, **SMALL)
    assert sent["AbortMultipartUpload"] == 1
    assert_nothing_left(s3, bucket, artifact_key("tdv-airflow", LAYER))


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupt_while_completing_aborts_the_upload(s3: Any, bucket: str,
                                                         interrupt: type[BaseException]
                                                         ) -> None:
    """Airflow's task timeout and SIGTERM raise in the task's main thread, e.g. while the
    upload is being completed."""
    def stop(**_: Any) -> None:
        raise interrupt()

    s3.meta.events.register("before-send.s3.CompleteMultipartUpload", stop)
    with pytest.raises(interrupt):
        upload_artifact(s3, bucket, "tdv-airflow", LAYER, **SMALL)
    assert_nothing_left(s3, bucket, artifact_key("tdv-airflow", LAYER))


def test_stale_uploads_of_the_key_are_aborted_others_left(s3: Any, bucket: str,
                                                          caplog: pytest.LogCaptureFixture
                                                          ) -> None:
    """What a SIGKILLed worker leaves: an upload of the key, never completed."""
    key = artifact_key("tdv-airflow", LAYER)
    s3.create_multipart_upload(Bucket=bucket, Key=key)
    other = s3.create_multipart_upload(Bucket=bucket, Key=f"{key}.other")["UploadId"]
    with caplog.at_level(logging.INFO, logger="tdv_airflow.core.multipart"):
        upload_artifact(s3, bucket, "tdv-airflow", LAYER, stale_age=timedelta(0), **SMALL)
    left = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in left] == [(f"{key}.other", other)]
    assert "1 incomplete upload(s) found, 1 stale one(s) aborted" in caplog.text
    assert object_sha256(s3, bucket, key) == LAYER.sha256


def test_young_uploads_of_the_key_are_left_alone(s3: Any, bucket: str,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """moto dates every upload 2010-11-10 (see docs/aws-behaviour.md): an age limit of a
    century makes that one young, as another run's upload in progress would be."""
    key = artifact_key("tdv-airflow", LAYER)
    running = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    with caplog.at_level(logging.INFO, logger="tdv_airflow.core.multipart"):
        upload_artifact(s3, bucket, "tdv-airflow", LAYER, stale_age=timedelta(days=36525),
                        **SMALL)
    left = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in left] == [running]
    assert "left alone" in caplog.text and "0 stale one(s) aborted" in caplog.text


def test_the_encryption_arguments_reach_the_multipart_upload(s3: Any, bucket: str,
                                                             boto_session: Any, aws: Any
                                                             ) -> None:
    kms = boto_session.client("kms", endpoint_url=aws.endpoint_url)
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    key, _ = upload_artifact(s3, bucket, "tdv-airflow", LAYER,
                             {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": arn},
                             **SMALL)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", arn)
    assert head["ETag"].endswith('-3"')


def test_without_encryption_arguments_sse_s3(s3: Any, bucket: str) -> None:
    key, _ = upload_artifact(s3, bucket, "tdv-airflow", LAYER, **SMALL)
    assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "AES256"
