"""Credentials for the framework-free API, and the clients the core uses.

Airflow users never touch this: the hook builds :class:`AwsClients` from a connection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

#: The botocore configuration of every client tdv-airflow makes, unless the connection or
#: the task says otherwise: botocore's ``standard`` retry mode (exponential backoff with
#: jitter on throttling, transient errors and connection failures) with up to 8 retries,
#: i.e. 9 attempts in all (botocore's ``max_attempts`` counts retries; its
#: ``total_max_attempts`` counts the first call too).
DEFAULT_BOTOCORE_CONFIG: dict[str, Any] = {
    "retries": {"mode": "standard", "max_attempts": 8},
    "connect_timeout": 10,
    "read_timeout": 60,
}
_ATTEMPT_KEYS = ("max_attempts", "total_max_attempts")


def botocore_config(*layers: Any) -> Any:
    """:data:`DEFAULT_BOTOCORE_CONFIG` overlaid by each layer in turn (later ones win).

    ``retries`` is merged key by key, so a layer that sets only ``max_attempts`` keeps the
    ``standard`` mode; a layer naming ``max_attempts`` or ``total_max_attempts`` replaces
    both (botocore lets ``total_max_attempts`` win over ``max_attempts``).

    :param layers: ``botocore.config.Config`` objects, dicts of its arguments, or ``None``
        (skipped), e.g. the connection's ``config_kwargs`` then the task's
        ``botocore_config``.
    :returns: a new ``botocore.config.Config``.
    """
    from botocore.config import Config

    config = Config(**deepcopy(DEFAULT_BOTOCORE_CONFIG))
    retries = deepcopy(DEFAULT_BOTOCORE_CONFIG["retries"])
    for layer in layers:
        if layer is None:
            continue
        layer = layer if isinstance(layer, Config) else Config(**deepcopy(dict(layer)))
        config = config.merge(layer)
        more: Mapping[str, Any] = layer.retries or {}
        if any(key in more for key in _ATTEMPT_KEYS):
            for key in _ATTEMPT_KEYS:
                retries.pop(key, None)
        retries.update(deepcopy(dict(more)))
    return config.merge(Config(retries=retries))


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
        from tdv_airflow.exceptions import InvalidInputError

        config = botocore_config()
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

    def _client(self, service: str) -> Any:
        """A new client for ``service`` whose error answers name their endpoint (see
        :func:`note_endpoint`)."""
        client = self._factory(service)
        client.meta.events.register("after-call", note_endpoint, unique_id=_NOTE_ENDPOINT)
        return client

    @cached_property
    def s3(self) -> Any:
        """The S3 client."""
        return self._client("s3")

    @cached_property
    def cloudformation(self) -> Any:
        """The CloudFormation client."""
        return self._client("cloudformation")

    @cached_property
    def apigateway(self) -> Any:
        """The API Gateway (REST APIs) client."""
        return self._client("apigateway")

    @cached_property
    def lambda_(self) -> Any:
        """The Lambda client."""
        return self._client("lambda")

    @cached_property
    def kms(self) -> Any:
        """The KMS client."""
        return self._client("kms")

    @cached_property
    def cloudwatch(self) -> Any:
        """The CloudWatch client (alarms)."""
        return self._client("cloudwatch")


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


#: Where :func:`note_endpoint` puts an error answer's endpoint, in its ``ResponseMetadata``.
ENDPOINT_METADATA = "TdvEndpoint"
_NOTE_ENDPOINT = "tdv-airflow-note-endpoint"

#: Error codes of a throttled or transiently failing AWS call: botocore's standard retry
#: mode retries them (its lists, less ``LimitExceededException``, which also means a
#: quota such as CloudFormation's number of stacks), and so can the task.
TRANSIENT_ERROR_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequestsException", "SlowDown",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "EC2ThrottledException",
    "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "PriorRequestNotComplete", "ServiceUnavailable", "InternalError", "InternalFailure",
    "RequestTimeout", "RequestTimeoutException",
})
#: HTTP statuses of a throttled or transiently failing AWS call.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def note_endpoint(http_response: Any = None, parsed: Any = None, **_: Any) -> None:
    """botocore ``after-call`` handler: write the origin (``scheme://host``) of an error
    answer's request URL into its ``ResponseMetadata`` (botocore's ``ClientError`` keeps
    the parsed answer but not the URL), for :func:`aws_reachable`'s message.

    :param http_response: the last HTTP answer (botocore's ``AWSResponse``).
    :param parsed: the parsed answer, which becomes the ``ClientError``'s ``response``.
    """
    from urllib.parse import urlsplit

    url = getattr(http_response, "url", None)
    if not url or getattr(http_response, "status_code", 200) < 300 \
            or not isinstance(parsed, dict):
        return
    parts = urlsplit(str(url))
    parsed.setdefault("ResponseMetadata", {})[ENDPOINT_METADATA] = \
        f"{parts.scheme}://{parts.netloc}"


def transient_client_error(exc: BaseException) -> Any:
    """The throttling or transient botocore ``ClientError`` behind ``exc`` (``exc`` itself
    or the explicit cause of one of our errors, e.g. the :exc:`ArtifactError` of an
    upload), else ``None``.

    :param exc: an exception.
    """
    from botocore.exceptions import ClientError

    from tdv_airflow.exceptions import TdvError

    seen: BaseException | None = exc
    while isinstance(seen, TdvError):
        seen = seen.__cause__
    if not isinstance(seen, ClientError):
        return None
    code = str(seen.response.get("Error", {}).get("Code", ""))
    status = seen.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return seen if code in TRANSIENT_ERROR_CODES or status in TRANSIENT_STATUSES else None


@contextmanager
def aws_reachable(operation: str, endpoint: str | None = None) -> Iterator[None]:
    """Turn botocore's connection failures into :class:`AwsUnreachableError`, and AWS's
    throttling and transient errors, once botocore's retries are spent, into
    :class:`AwsUnavailableError`.

    A refused, reset or timed-out connection (``EndpointConnectionError``,
    ``ConnectTimeoutError``, ``ReadTimeoutError``, ``ConnectionClosedError`` ...)
    becomes one clear error naming the endpoint and the operation. A ``ClientError``
    whose code is a throttling or transient one (:data:`TRANSIENT_ERROR_CODES`) or whose
    HTTP status is 429, 500, 502, 503 or 504, raised as is or as the cause of one of our
    errors, becomes one naming the endpoint, the operation, the code, the status and the
    attempts made. Other errors (``AccessDenied``, ``ValidationError`` ...) pass unchanged.

    :param operation: what was being done, e.g. ``"delete of stack 'tdv-iris'"``.
    :param endpoint: the endpoint to name; by default the failed request's own (noted by
        the clients of :class:`AwsClients`), else "the AWS endpoint".
    """
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from botocore.exceptions import HTTPClientError

    from tdv_airflow.exceptions import AwsUnavailableError, AwsUnreachableError

    try:
        yield
    except (BotoConnectionError, HTTPClientError) as exc:
        where = endpoint or getattr(exc, "kwargs", {}).get("endpoint_url")
        raise AwsUnreachableError(where, operation,
                                  f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        error = None if isinstance(exc, AwsUnreachableError) else transient_client_error(exc)
        if error is None:
            raise
        meta = error.response.get("ResponseMetadata", {})
        raise AwsUnavailableError(
            endpoint or meta.get(ENDPOINT_METADATA), operation,
            code=str(error.response.get("Error", {}).get("Code") or "?"),
            status=meta.get("HTTPStatusCode"),
            attempts=int(meta.get("RetryAttempts", 0)) + 1,
            message=str(error.response.get("Error", {}).get("Message") or "")) from exc
