"""The artifact bucket's default encryption: uploads follow it, and the function's role
may decrypt with its KMS key.

S3 encrypts every new object the way the bucket's default encryption says: SSE-S3
(``AES256``, every bucket's default since January 2023) or SSE-KMS with a KMS key
(``aws:kms``, or the dual-layer ``aws:kms:dsse``). An upload that forces ``AES256`` is
refused by a bucket policy that requires KMS, so uploads name the bucket's own algorithm
and key (:meth:`BucketEncryption.put_args`). An object encrypted with a customer managed
key is readable only by principals allowed ``kms:Decrypt`` on that key: the function's
role gets it on that key only, through the template parameter ``ArtifactKmsKeyArn``
(:data:`KMS_KEY_PARAMETER`). The AWS managed key ``aws/s3`` (SSE-KMS without a key id)
needs no statement: its key policy lets the account's principals use it through S3.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from tdv_airflow.exceptions import InvalidInputError

#: The template parameter naming the KMS key the function's role may decrypt with.
KMS_KEY_PARAMETER = "ArtifactKmsKeyArn"
#: A KMS key ARN (not an alias ARN, which IAM does not accept as a key's ``Resource``).
KMS_KEY_ARN_RE = re.compile(r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$")
#: S3's answer when a bucket has no default encryption configuration (moto; AWS always
#: has one since 2023).
_NO_CONFIGURATION = "ServerSideEncryptionConfigurationNotFoundError"


@dataclass(frozen=True)
class BucketEncryption:
    """How a bucket encrypts new objects by default.

    :param algorithm: ``AES256``, ``aws:kms`` or ``aws:kms:dsse``.
    :param kms_key_arn: the KMS key's ARN; ``None`` for SSE-S3 and for the AWS managed
        key ``aws/s3``.
    :param bucket_key: whether the bucket uses an S3 Bucket Key (SSE-KMS only).
    """

    algorithm: str = "AES256"
    kms_key_arn: str | None = None
    bucket_key: bool | None = None

    def put_args(self) -> dict[str, Any]:
        """The ``put_object`` arguments that encrypt an object as the bucket would."""
        args: dict[str, Any] = {"ServerSideEncryption": self.algorithm}
        if self.kms_key_arn:
            args["SSEKMSKeyId"] = self.kms_key_arn
        if self.algorithm == "aws:kms" and self.bucket_key is not None:
            args["BucketKeyEnabled"] = self.bucket_key
        return args


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def bucket_encryption(clients: Any, bucket: str) -> BucketEncryption:
    """The default encryption of ``bucket``, its KMS key resolved to the key's ARN.

    :param clients: :class:`~tdv_airflow.core.clients.AwsClients`.
    :param bucket: the artifact bucket.
    :raises InvalidInputError: when these credentials may not read the bucket's
        encryption (``s3:GetEncryptionConfiguration``) or describe its key
        (``kms:DescribeKey``), naming the bucket or the key.
    """
    try:
        answer = clients.s3.get_bucket_encryption(Bucket=bucket)
    except clients.s3.exceptions.ClientError as exc:
        if _code(exc) == _NO_CONFIGURATION:
            return BucketEncryption()
        if _code(exc) in {"AccessDenied", "403"}:
            raise InvalidInputError(
                f"cannot read the default encryption of S3 bucket {bucket!r} (AccessDenied on "
                "GetBucketEncryption): uploads follow it and the function's role needs its "
                "KMS key; allow s3:GetEncryptionConfiguration on the bucket (docs/iam.md)"
            ) from exc
        raise
    rules = answer.get("ServerSideEncryptionConfiguration", {}).get("Rules") or [{}]
    default = rules[0].get("ApplyServerSideEncryptionByDefault") or {}
    algorithm = str(default.get("SSEAlgorithm") or "AES256")
    if algorithm == "AES256":
        return BucketEncryption()
    key = default.get("KMSMasterKeyID")
    return BucketEncryption(algorithm, kms_key_arn(clients, key) if key else None,
                            rules[0].get("BucketKeyEnabled"))


def kms_key_arn(clients: Any, key: str) -> str:
    """The ARN of the KMS key that ``key`` (a key ARN, key id, alias name or alias ARN)
    names; a key ARN is returned as it is.

    :param clients: :class:`~tdv_airflow.core.clients.AwsClients`.
    :param key: the bucket's ``KMSMasterKeyID``.
    :raises InvalidInputError: when these credentials may not describe the key.
    """
    if KMS_KEY_ARN_RE.match(key):
        return key
    try:
        return str(clients.kms.describe_key(KeyId=key)["KeyMetadata"]["Arn"])
    except clients.kms.exceptions.ClientError as exc:
        if _code(exc) in {"AccessDeniedException", "AccessDenied"}:
            raise InvalidInputError(
                f"the artifact bucket encrypts with the KMS key {key!r}, which these "
                "credentials may not describe (kms:DescribeKey): give its key ARN as the "
                "bucket's default key, or allow kms:DescribeKey on it (docs/iam.md)") from exc
        raise
