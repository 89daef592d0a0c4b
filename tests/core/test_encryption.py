"""The artifact bucket's default encryption as AWS answers it (botocore Stubber on the
documented response shapes: every AWS bucket has a default configuration since 2023,
which the emulator does not model), and the upload arguments that follow it."""

from __future__ import annotations

from typing import Any

import pytest

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.encryption import BucketEncryption, bucket_encryption, kms_key_arn
from tdv_airflow.exceptions import InvalidInputError

KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1dca5b89-ed7d-4d21-8f24-949604784af0"


def stubbed(responses: list[tuple[str, str, Any]]) -> tuple[AwsClients, list[Any]]:
    """Clients whose S3 and KMS answer ``(service, operation, answer)`` in order (an
    answer that is an error code string is raised as that error)."""
    import boto3
    from botocore.stub import Stubber

    clients = {name: boto3.client(name, region_name="eu-west-1", aws_access_key_id="x",
                                  aws_secret_access_key="x")  # noqa: S106 - never sent
               for name in ("s3", "kms")}
    stubbers = {name: Stubber(client) for name, client in clients.items()}
    for service, operation, answer in responses:
        if isinstance(answer, str):
            stubbers[service].add_client_error(operation, service_error_code=answer,
                                               http_status_code=403)
        else:
            stubbers[service].add_response(operation, answer)
    for stubber in stubbers.values():
        stubber.activate()
    return AwsClients(clients.__getitem__, "eu-west-1"), list(stubbers.values())


def rule(algorithm: str, key: str | None = None, bucket_key: bool | None = None
         ) -> dict[str, Any]:
    default: dict[str, Any] = {"SSEAlgorithm": algorithm}
    if key:
        default["KMSMasterKeyID"] = key
    entry: dict[str, Any] = {"ApplyServerSideEncryptionByDefault": default}
    if bucket_key is not None:
        entry["BucketKeyEnabled"] = bucket_key
    return {"ServerSideEncryptionConfiguration": {"Rules": [entry]}}


def test_the_default_sse_s3_of_every_aws_bucket_uploads_aes256() -> None:
    clients, stubbers = stubbed([("s3", "get_bucket_encryption", rule("AES256", None, False))])
    found = bucket_encryption(clients, "b-1")
    assert found == BucketEncryption()
    assert found.put_args() == {"ServerSideEncryption": "AES256"}
    for stubber in stubbers:
        stubber.assert_no_pending_responses()


def test_a_kms_bucket_with_an_alias_uploads_with_its_key_arn() -> None:
    clients, stubbers = stubbed([
        ("s3", "get_bucket_encryption", rule("aws:kms", "alias/artifacts", True)),
        ("kms", "describe_key", {"KeyMetadata": {"KeyId": KEY_ARN.rsplit("/", 1)[1],
                                                 "Arn": KEY_ARN}}),
    ])
    found = bucket_encryption(clients, "b-1")
    assert found.put_args() == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": KEY_ARN,
                                "BucketKeyEnabled": True}
    for stubber in stubbers:
        stubber.assert_no_pending_responses()


def test_a_key_arn_needs_no_lookup_and_the_aws_managed_key_no_statement() -> None:
    clients, _ = stubbed([("s3", "get_bucket_encryption", rule("aws:kms:dsse", KEY_ARN)),
                          ("s3", "get_bucket_encryption", rule("aws:kms"))])
    assert bucket_encryption(clients, "b-1") == BucketEncryption("aws:kms:dsse", KEY_ARN, None)
    managed = bucket_encryption(clients, "b-1")  # aws/s3: its key policy suffices
    assert managed.kms_key_arn is None
    assert managed.put_args() == {"ServerSideEncryption": "aws:kms"}


@pytest.mark.parametrize("service,operation,permission", [
    ("s3", "get_bucket_encryption", "s3:GetEncryptionConfiguration"),
    ("kms", "describe_key", "kms:DescribeKey"),
])
def test_a_denied_lookup_names_the_permission(service: str, operation: str,
                                              permission: str) -> None:
    responses: list[tuple[str, str, Any]] = [
        ("s3", "get_bucket_encryption", rule("aws:kms", "alias/artifacts"))]
    responses = ([("s3", operation, "AccessDenied")] if service == "s3" else
                 [*responses, ("kms", operation, "AccessDeniedException")])
    clients, _ = stubbed(responses)
    with pytest.raises(InvalidInputError, match=permission):
        bucket_encryption(clients, "b-1")


def test_kms_key_arn_keeps_a_key_arn() -> None:
    clients, _ = stubbed([])
    assert kms_key_arn(clients, KEY_ARN) == KEY_ARN
