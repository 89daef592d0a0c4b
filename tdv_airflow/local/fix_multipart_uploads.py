"""Emulator fidelity: an incomplete multipart upload has its real initiation time, and a
request to an upload that does not exist is ``NoSuchUpload``.

On AWS, ``ListMultipartUploads`` gives each incomplete upload's ``Initiated``, the "date
and time at which the multipart upload was initiated"
(https://docs.aws.amazon.com/AmazonS3/latest/API/API_MultipartUpload.html ,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListMultipartUploads.html). moto 5.2.5
answers the constant ``2010-11-10T20:48:33Z`` for every upload, so on the emulator every
upload looks years old: :func:`tdv_airflow.core.multipart.abort_stale_uploads`, which
leaves uploads younger than an hour alone (another run may be sending the same
content-addressed key), would abort an upload started a second ago there, never on AWS.

On AWS, ``UploadPart``, ``UploadPartCopy`` and ``CompleteMultipartUpload`` with an upload id
that does not exist (never created, aborted or completed) are refused with ``NoSuchUpload``
(HTTP 404: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html ,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPart.html ,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html), as
``AbortMultipartUpload`` and ``ListParts`` already are on moto. moto 5.2.5 looks the upload
up without checking and answers HTTP 500 (a ``KeyError``), which botocore's retries take for
a transient server error and send again.

:func:`install` records the time (UTC, cut to the second) at which moto creates each
multipart upload and answers it as ``Initiated``, and refuses those three calls on an
unknown upload with moto's own ``NoSuchUpload``. A completed upload's idempotent
``CompleteMultipartUpload`` (moto answers it before looking the upload up) and everything
else stay moto's.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

_MARK = "_tdv_multipart_uploads"
#: The attribute of moto's ``FakeMultipart`` holding its initiation time.
INITIATED = "_tdv_initiated"


def now_to_the_second() -> datetime:
    """The current UTC time, cut to the whole second (never later than now): moto's S3,
    like S3 (``2010-11-10T20:48:33.000Z``), writes every time to the second."""
    return datetime.now(UTC).replace(microsecond=0)


def _check_upload(backend: Any, bucket_name: str, multipart_id: str) -> None:
    """Raise moto's ``NoSuchUpload`` when ``bucket_name`` has no upload ``multipart_id``
    (moto's ``NoSuchBucket`` first, when there is no such bucket)."""
    from moto.s3.exceptions import NoSuchUpload

    if multipart_id not in backend.get_bucket(bucket_name).multiparts:
        raise NoSuchUpload(upload_id=multipart_id)


def install() -> None:
    """Date multipart uploads when they are created, and refuse unknown ones (idempotent)."""
    from moto.s3.models import FakeMultipart, S3Backend
    from moto.s3.responses import S3Response

    moto_list = S3Response.list_multipart_uploads
    if getattr(moto_list, _MARK, False):
        return
    moto_init = FakeMultipart.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        moto_init(self, *args, **kwargs)
        setattr(self, INITIATED, now_to_the_second())

    def list_multipart_uploads(self: Any) -> Any:
        uploads = self.backend.list_multipart_uploads(self.bucket_name)
        moto_serialized = self.serialized

        def serialized(action_result: Any) -> Any:
            for listed in action_result.result.get("Uploads", []):
                initiated = getattr(uploads.get(listed["UploadId"]), INITIATED, None)
                if initiated is not None:
                    listed["Initiated"] = initiated
            return moto_serialized(action_result)

        self.serialized = serialized  # this request's S3Response only (one per request)
        try:
            return moto_list(self)
        finally:
            del self.serialized

    def checked(moto_method: Any) -> Any:
        def method(self: Any, bucket_name: str, multipart_id: str, *args: Any,
                   **kwargs: Any) -> Any:
            _check_upload(self, bucket_name, multipart_id)
            return moto_method(self, bucket_name, multipart_id, *args, **kwargs)
        return method

    setattr(list_multipart_uploads, _MARK, True)
    FakeMultipart.__init__ = init  # type: ignore[method-assign]
    S3Response.list_multipart_uploads = list_multipart_uploads  # type: ignore[method-assign]
    for name in ("upload_part", "upload_part_copy", "complete_multipart_upload"):
        setattr(S3Backend, name, checked(getattr(S3Backend, name)))
