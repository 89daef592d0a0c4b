"""Multipart uploads of large artifacts, with an end.

A dependency layer or bundle is tens to hundreds of MB: one PutObject would resend all of
it after any failure, and S3 takes at most 5 GB in one. From :data:`MULTIPART_THRESHOLD`
on, :func:`upload_multipart` sends it in :data:`PART_SIZE` parts, each with its own
SHA-256 checksum (S3 refuses a part whose bytes do not match it).

An incomplete multipart upload is never visible as an object, but its parts are stored,
and billed, until it is completed or aborted. So:

* any failure while the parts are sent or the upload is completed, ``BaseException``
  included (``KeyboardInterrupt``, ``SystemExit``, the ``AirflowTaskTimeout`` of a task's
  ``execution_timeout``), aborts the upload before the error goes on;
* a process killed outright (SIGKILL, out of memory; SIGTERM too, which Airflow 3's task
  runner answers with ``on_kill`` only) aborts nothing: the next upload of the same key
  aborts the incomplete uploads of that key older than :data:`STALE_UPLOAD_AGE` (younger
  ones may be another run sending the same content-addressed key right now);
* and the bucket's lifecycle rule ``AbortIncompleteMultipartUpload`` ends whatever is left
  (``docs/storage.md``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

#: Artifacts of at least this many bytes are sent as a multipart upload.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
#: The size of every part but the last (S3: at least 5 MiB, at most 10,000 parts).
PART_SIZE = 8 * 1024 * 1024
#: Parts sent at the same time.
PART_WORKERS = 4
#: Incomplete uploads of a key older than this are left by a dead process: aborted.
STALE_UPLOAD_AGE = timedelta(hours=1)


def _sha256_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def abort_stale_uploads(s3: Any, bucket: str, key: str,
                        stale_age: timedelta = STALE_UPLOAD_AGE) -> tuple[int, int]:
    """Abort the incomplete multipart uploads of exactly ``key`` started more than
    ``stale_age`` ago; leave (and log) the younger ones.

    Best effort: an error listing or aborting (e.g. credentials without
    ``s3:ListBucketMultipartUploads`` or ``s3:AbortMultipartUpload``) is logged, not
    raised; the bucket's lifecycle rule is the backstop.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket.
    :param key: the object key (other keys under the same prefix are not touched).
    :param stale_age: how old an upload must be to be aborted; ``timedelta(0)`` aborts all.
    :returns: how many incomplete uploads of ``key`` were found, and how many aborted.
    """
    try:
        pages = s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket,
                                                                   Prefix=key)
        uploads = [u for page in pages for u in page.get("Uploads", []) if u["Key"] == key]
    except s3.exceptions.ClientError as exc:
        log.warning("could not list the incomplete uploads of s3://%s/%s (%s); the bucket's "
                    "lifecycle rule must end them", bucket, key, exc)
        return 0, 0
    now, aborted = datetime.now(UTC), 0
    for upload in uploads:
        age = now - upload["Initiated"]
        if age <= stale_age:
            log.info("s3://%s/%s: an incomplete upload started %s ago is left alone (it may "
                     "be another run's, in progress)", bucket, key, age)
            continue
        try:
            s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
            aborted += 1
        except s3.exceptions.ClientError as exc:
            log.warning("could not abort the stale upload %s of s3://%s/%s: %s",
                        upload["UploadId"], bucket, key, exc)
    if uploads:
        log.info("s3://%s/%s: %d incomplete upload(s) found, %d stale one(s) aborted",
                 bucket, key, len(uploads), aborted)
    return len(uploads), aborted


def _abort(s3: Any, bucket: str, key: str, upload_id: str) -> None:
    """Abort an upload, best effort: its own error is logged, never raised."""
    try:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        log.info("aborted the failed multipart upload of s3://%s/%s", bucket, key)
    except Exception as exc:  # the original error matters more; the lifecycle rule remains
        log.warning("could not abort the multipart upload %s of s3://%s/%s (the bucket's "
                    "lifecycle rule will): %s", upload_id, bucket, key, exc)


def _send_parts(s3: Any, bucket: str, key: str, upload_id: str, data: bytes,
                part_size: int, workers: int) -> list[dict[str, Any]]:
    """Send every part (``workers`` at a time); their numbers, ETags and checksums."""
    view = memoryview(data)

    def send(number: int, offset: int) -> dict[str, Any]:
        body = view[offset:offset + part_size]
        checksum = _sha256_b64(body)
        answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id,
                                PartNumber=number, Body=bytes(body),
                                ChecksumAlgorithm="SHA256", ChecksumSHA256=checksum)
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

    offsets = range(0, len(data), part_size)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="tdv-part")
    futures: list[Future[dict[str, Any]]] = []
    try:
        futures = [pool.submit(send, n, off) for n, off in enumerate(offsets, start=1)]
        wait(futures, return_when=FIRST_EXCEPTION)
        return [future.result() for future in futures]
    finally:
        # On any failure (an interrupt too) no queued part starts, and the ones in flight
        # end before the caller aborts the upload (a part that lands after the abort
        # would be stored again).
        pool.shutdown(wait=True, cancel_futures=True)


def upload_multipart(s3: Any, bucket: str, key: str, data: bytes,
                     create_args: Mapping[str, Any], *, part_size: int = PART_SIZE,
                     workers: int = PART_WORKERS,
                     stale_age: timedelta = STALE_UPLOAD_AGE) -> None:
    """Upload ``data`` to ``s3://bucket/key`` in parts; abort on any failure.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket.
    :param key: the object key.
    :param data: the bytes.
    :param create_args: CreateMultipartUpload's other arguments (``Metadata``,
        encryption), as PutObject would take them.
    :param part_size: bytes per part (the last one may be smaller).
    :param workers: parts sent at the same time.
    :param stale_age: see :func:`abort_stale_uploads`.
    :raises botocore.exceptions.ClientError: as S3 answered, after the upload is aborted.
    """
    abort_stale_uploads(s3, bucket, key, stale_age)
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ChecksumAlgorithm="SHA256",
                                           **create_args)["UploadId"]
    try:
        parts = _send_parts(s3, bucket, key, upload_id, data, part_size, workers)
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": parts})
    except BaseException:
        _abort(s3, bucket, key, upload_id)
        raise
    log.info("s3://%s/%s: %d bytes sent in %d parts", bucket, key, len(data), len(parts))
