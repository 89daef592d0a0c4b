"""Content-addressed storage of artifacts in S3.

Key layout: ``{prefix}/{kind}/{sha256}/{filename}``, e.g.
``tdv-airflow/prepro_fn/9f2c.../prepro_fn.pkl``. The same bytes always get the same key,
so a retry uploads nothing, and a changed artifact gets a new key, which makes
CloudFormation redeploy the Lambda code (it ignores an unchanged ``S3Key``).
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from tdv_airflow.core.artifacts import Artifact
from tdv_airflow.core.multipart import (
    MULTIPART_THRESHOLD,
    PART_SIZE,
    STALE_UPLOAD_AGE,
    upload_multipart,
)
from tdv_airflow.exceptions import ArtifactError, InvalidInputError

DEFAULT_PREFIX = "tdv-airflow"
_CHUNK = 8 * 1024 * 1024
_MULTIPART_ETAG = re.compile(r"-\d+\"?$")


def artifact_key(prefix: str, artifact: Artifact) -> str:
    """The content-addressed key of ``artifact``.

    :param prefix: the key prefix (no trailing slash).
    :param artifact: the artifact.
    """
    return f"{prefix.strip('/')}/{artifact.kind}/{artifact.sha256}/{artifact.filename}"


def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def check_bucket(s3: Any, bucket: str, region: str | None = None) -> None:
    """Fail clearly when ``bucket`` is missing, not ours to use, or in another region.

    Lambda reads a function's code only from a bucket in the function's own region, and
    botocore follows S3's redirect to any region: without this check the uploads work
    and the stack then fails (and rolls back) on every run.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket name.
    :param region: the stack's region; ``None`` skips the region check.
    :raises InvalidInputError: naming the bucket (and both regions when they differ).
    """
    try:
        head = s3.head_bucket(Bucket=bucket)
    except s3.exceptions.ClientError as exc:
        code = _error_code(exc)
        if code in {"404", "NoSuchBucket", "NotFound"}:
            raise InvalidInputError(f"S3 bucket {bucket!r} does not exist; create it first "
                                    "or pass an existing bucket") from exc
        if code in {"403", "AccessDenied", "Forbidden"}:
            raise InvalidInputError(f"S3 bucket {bucket!r} exists but these credentials may "
                                    "not use it (403 on HeadBucket)") from exc
        raise
    where = bucket_region(s3, bucket, head)
    if region is not None and where != region:
        raise InvalidInputError(
            f"S3 bucket {bucket!r} is in region {where}, but the stack is deployed in "
            f"{region}: Lambda reads a function's code only from a bucket in the function's "
            f"own region; use a bucket in {region}, or deploy in {where} (region_name)")


def bucket_region(s3: Any, bucket: str, head: Mapping[str, Any] | None = None) -> str:
    """The region ``bucket`` lives in.

    HeadBucket names it (``BucketRegion``, the ``x-amz-bucket-region`` header); an S3
    that does not is asked GetBucketLocation, whose empty answer means ``us-east-1``
    (and ``EU`` the old name of ``eu-west-1``).

    :param s3: a boto3 S3 client.
    :param bucket: the bucket name.
    :param head: the bucket's HeadBucket answer, when already asked.
    """
    head = head if head is not None else s3.head_bucket(Bucket=bucket)
    headers = head.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = head.get("BucketRegion") or headers.get("x-amz-bucket-region")
    if not region:
        location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
        region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location,
                                                                            location)
    return str(region)


def _is_missing(exc: Exception) -> bool:
    """Whether an S3 error says the object (or key) does not exist."""
    return _error_code(exc) in {"404", "NoSuchKey", "NotFound"}


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    """Whether ``s3://bucket/key`` exists.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket.
    :param key: the object key.
    :returns: ``False`` when S3 answers 404 (a HEAD answer has no body, so a missing
        bucket looks the same as a missing key).
    :raises botocore.exceptions.ClientError: on any other error (e.g. 403 access denied),
        which must not pass for "not there yet".
    """
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except s3.exceptions.ClientError as exc:
        if _is_missing(exc):
            return False
        raise
    return True


def object_sha256(s3: Any, bucket: str, key: str, what: str = "model_s3_key") -> str:
    """SHA-256 (hex) of an object already in S3.

    Uses the stored full-object SHA-256 checksum when the uploader sent one (free);
    otherwise (no checksum, another algorithm, or a multipart object's composite
    checksum) streams the object once.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket.
    :param key: the object key.
    :param what: the argument that named the key, for the message.
    :raises InvalidInputError: when the object does not exist.
    """
    try:
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except s3.exceptions.ClientError as exc:
        if _is_missing(exc):
            raise InvalidInputError(
                f"{what} {key!r} does not exist in bucket {bucket!r}; expected the key the "
                "training task wrote"
            ) from exc
        raise
    checksum = head.get("ChecksumSHA256")
    # A multipart object's SHA-256 is a checksum of its parts' checksums (S3 offers no
    # full-object SHA-256 for them), shown as ``<base64>-<parts>`` with ``ChecksumType``
    # COMPOSITE; its ETag ends in ``-<parts>`` too, the one sign some S3 emulators show.
    full_object = head.get("ChecksumType", "FULL_OBJECT") == "FULL_OBJECT" \
        and not _MULTIPART_ETAG.search(str(head.get("ETag", "")))
    if checksum and "-" not in checksum and full_object:
        return base64.b64decode(checksum).hex()
    digest = hashlib.sha256()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for chunk in iter(lambda: body.read(_CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


def upload_artifact(s3: Any, bucket: str, prefix: str, artifact: Artifact,
                    encryption: Mapping[str, Any] | None = None, *,
                    multipart_threshold: int = MULTIPART_THRESHOLD,
                    part_size: int = PART_SIZE,
                    stale_age: timedelta = STALE_UPLOAD_AGE) -> tuple[str, bool]:
    """Upload ``artifact`` under its content-addressed key unless it is already there.

    An artifact of at least ``multipart_threshold`` bytes goes as a multipart upload
    (:func:`tdv_airflow.core.multipart.upload_multipart`: same metadata, checksum
    algorithm and encryption, aborted on failure), a smaller one as one PutObject.

    :param s3: a boto3 S3 client.
    :param bucket: the bucket.
    :param prefix: the key prefix.
    :param artifact: the artifact.
    :param encryption: the ``put_object`` encryption arguments, the bucket's own
        (:meth:`tdv_airflow.core.encryption.BucketEncryption.put_args`); SSE-S3 when
        ``None``.
    :param multipart_threshold: the size from which a multipart upload is used.
    :param part_size: the size of a part of a multipart upload.
    :param stale_age: incomplete multipart uploads of the key older than this are aborted
        first (see :func:`tdv_airflow.core.multipart.abort_stale_uploads`).
    :returns: the key, and whether bytes were sent.
    :raises ArtifactError: naming the artifact, bucket and key, when S3 refuses.
    """
    key = artifact_key(prefix, artifact)
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
        if head.get("Metadata", {}).get("sha256") == artifact.sha256:
            return key, False
    except s3.exceptions.ClientError as exc:
        if not _is_missing(exc):
            raise ArtifactError(f"cannot check s3://{bucket}/{key}: {exc}") from exc
    # The algorithm too: S3 checks the digest either way, and the emulator stores it
    # only when the algorithm is named.
    args = {"Metadata": {"sha256": artifact.sha256},
            **(encryption or {"ServerSideEncryption": "AES256"})}
    try:
        if len(artifact.data) >= multipart_threshold:
            upload_multipart(s3, bucket, key, artifact.data, args, part_size=part_size,
                             stale_age=stale_age)
        else:
            s3.put_object(Bucket=bucket, Key=key, Body=artifact.data,
                          ChecksumAlgorithm="SHA256",
                          ChecksumSHA256=base64.b64encode(
                              bytes.fromhex(artifact.sha256)).decode(), **args)
    except s3.exceptions.ClientError as exc:
        raise ArtifactError(f"upload of {artifact.kind} to s3://{bucket}/{key} failed: "
                            f"{exc}") from exc
    return key, True


def template_url(bucket: str, key: str, region: str) -> str:
    """The HTTPS URL CloudFormation reads a template from.

    :param bucket: the bucket.
    :param key: the template's key.
    :param region: the bucket's region.
    """
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    host = "s3" if region == "us-east-1" else f"s3.{region}"
    if "." in bucket:  # a dotted bucket breaks virtual-host TLS: use the path style
        return f"https://{host}.{suffix}/{bucket}/{key}"
    return f"https://{bucket}.{host}.{suffix}/{key}"
