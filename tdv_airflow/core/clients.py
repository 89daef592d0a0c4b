"""Credentials for the framework-free API, and the clients the core uses.

Airflow users never touch this: the hook builds :class:`AwsClients` from a connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class UserAwsAuth:
    """AWS credentials given by value.

    :param aws_access_key_id: the access key id.
    :param aws_secret_access_key: the secret key (never shown in ``repr``).
    :param aws_session_token: an optional session token (temporary credentials).
    :param endpoint_url: an optional endpoint for every service (e.g. a local emulator).
    """

    aws_access_key_id: str
    aws_secret_access_key: str = field(repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None

    def session(self, region_name: str) -> Any:
        """A boto3 Session holding these credentials.

        :param region_name: the session's region.
        """
        import boto3

        return boto3.Session(
            aws_access_key_id=self.aws_access_key_id,
            aws_secret_access_key=self.aws_secret_access_key,
            aws_session_token=self.aws_session_token,
            region_name=region_name,
        )


class AwsClients:
    """Lazily created boto3 clients, one per service, all in one region.

    :param factory: makes a client from a service name (``"s3"`` ...).
    :param region_name: the region the clients use.
    """

    def __init__(self, factory: Callable[[str], Any], region_name: str) -> None:
        self._factory = factory
        self.region_name = region_name

    @classmethod
    def from_auth(cls, auth_object: Any, region_name: str) -> AwsClients:
        """Clients from a boto3 Session, a :class:`UserAwsAuth`, or ``None`` (default chain).

        :param auth_object: the credentials.
        :param region_name: the region.
        """
        from botocore.config import Config

        from tdv_airflow.exceptions import InvalidInputError

        config = Config(retries={"mode": "standard", "max_attempts": 5},
                        connect_timeout=10, read_timeout=60)
        endpoint_url = None
        if isinstance(auth_object, UserAwsAuth):
            session = auth_object.session(region_name)
            endpoint_url = auth_object.endpoint_url
        elif auth_object is None:
            import boto3

            session = boto3.Session(region_name=region_name)
        elif hasattr(auth_object, "client") and hasattr(auth_object, "get_credentials"):
            session = auth_object
        else:
            raise InvalidInputError(
                f"auth_object must be a boto3.Session or a tdv_airflow.UserAwsAuth, got "
                f"{type(auth_object).__name__}"
            )

        def factory(service: str) -> Any:
            return session.client(service, region_name=region_name,
                                  endpoint_url=endpoint_url, config=config)

        return cls(factory, region_name)

    @property
    def emulator_endpoint(self) -> str | None:
        """The clients' endpoint when it is not AWS (the embedded AWS, or any emulator),
        ``None`` on AWS. The one place that tells the two apart.
        """
        return emulator_endpoint(self.s3.meta.endpoint_url)

    def credentials(self) -> Any:
        """The frozen credentials the clients sign with (``None`` when there are none)."""
        signer = getattr(self.s3, "_request_signer", None)
        creds = getattr(signer, "_credentials", None)
        if creds is None:
            import boto3

            creds = boto3.Session().get_credentials()
        return creds.get_frozen_credentials() if creds is not None else None

    @cached_property
    def s3(self) -> Any:
        """The S3 client."""
        return self._factory("s3")

    @cached_property
    def cloudformation(self) -> Any:
        """The CloudFormation client."""
        return self._factory("cloudformation")

    @cached_property
    def apigateway(self) -> Any:
        """The API Gateway (REST APIs) client."""
        return self._factory("apigateway")

    @cached_property
    def lambda_(self) -> Any:
        """The Lambda client."""
        return self._factory("lambda")

    @cached_property
    def kms(self) -> Any:
        """The KMS client."""
        return self._factory("kms")

    @cached_property
    def cloudwatch(self) -> Any:
        """The CloudWatch client (alarms)."""
        return self._factory("cloudwatch")


#: Host name endings of AWS's own endpoints (commercial, China, dual-stack).
AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def emulator_endpoint(endpoint_url: str | None) -> str | None:
    """``endpoint_url`` when it points somewhere other than AWS (127.0.0.1, the Compose
    file's ``local-aws`` service ...), ``None`` for AWS itself or no endpoint at all.

    :param endpoint_url: a client's (or an Airflow connection's) endpoint URL.
    """
    from urllib.parse import urlsplit

    host = urlsplit(str(endpoint_url or "")).hostname or ""
    if not host or host.endswith(AWS_HOST_SUFFIXES):
        return None
    return str(endpoint_url)


@contextmanager
def aws_reachable(operation: str) -> Iterator[None]:
    """Turn botocore's connection failures into :class:`AwsUnreachableError`.

    A refused, reset or timed-out connection (``EndpointConnectionError``,
    ``ConnectTimeoutError``, ``ReadTimeoutError``, ``ConnectionClosedError`` ...)
    becomes one clear error naming the endpoint and the operation.

    :param operation: what was being done, e.g. ``"delete of stack 'tdv-iris'"``.
    """
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    try:
        yield
    except (BotoConnectionError, HTTPClientError) as exc:
        endpoint = getattr(exc, "kwargs", {}).get("endpoint_url")
        from tdv_airflow.exceptions import AwsUnreachableError

        raise AwsUnreachableError(endpoint, operation,
                                  f"{type(exc).__name__}: {exc}") from exc
