"""Verifying requests the way a deployed endpoint's authentication mode would (the local
stand-in of the API, :mod:`tdv_airflow.local.server`, applies it before a request
reaches the function).

What :class:`EndpointAuthenticator` verifies, exactly:

- ``API_KEY``: the ``x-api-key`` header equals the stack's key (compared in constant
  time); otherwise ``403 {"message": "Forbidden"}``, as API Gateway answers.
- ``AWS_IAM``: the request has an ``Authorization`` header of the form
  ``AWS4-HMAC-SHA256 Credential=<key id>/<yyyymmdd>/<region>/<service>/aws4_request,
  SignedHeaders=<...>, Signature=<64 hex>``, whose scope names the API's region and the
  service of the front door (``execute-api`` for a REST or HTTP API, ``lambda`` for a
  function URL); an ``X-Amz-Date`` within 5 minutes of now (API Gateway's
  allowance) on the scope's day; ``host`` and ``x-amz-date`` among the signed headers, and
  every signed header present; a ``X-Amz-Content-SHA256``, if sent, equal to the body's
  digest. When the key id is one whose secret the server knows (the credentials the
  server itself runs with, plus any given), the signature is recomputed with botocore's
  ``SigV4Auth`` over the method, path, query, signed headers and body, and must match
  (and a signed session token must be that credential's token). A key id the server does
  not know cannot be checked cryptographically: its request is accepted when well formed
  (``accept_unknown_signers=True``, the default) or refused. Never checked locally:
  whether the signer's IAM policies allow ``execute-api:Invoke`` or
  ``lambda:InvokeFunctionUrl`` (only AWS knows them),
  and replays within the 5 minutes.
- ``NONE``: every request passes.

A refused request gets API Gateway's ``403`` body and ``x-amzn-ErrorType``
(:class:`Refusal`). Neither the key's value nor a signature is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tdv_airflow.core.front_door_aws import front_door_of
from tdv_airflow.core.stacks import outputs_of
from tdv_airflow.core.validation import check_endpoint_auth
from tdv_airflow.endpoint.client import (
    EXECUTE_API,
    api_key_value,
    endpoint_auth_of,
    resolve_stack,
    signing_service,
)
from tdv_airflow.exceptions import EndpointAuthError

log = logging.getLogger(__name__)

#: How far ``X-Amz-Date`` may be from the server's clock (API Gateway allows 5 minutes).
MAX_CLOCK_SKEW = timedelta(minutes=5)
_AUTH_RE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<credential>[^,\s]+),\s*"
    r"SignedHeaders=(?P<signed>[a-z0-9;_.-]+),\s*Signature=(?P<signature>[0-9a-f]{64})$")
_AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused, as API Gateway would say it.

    :param status: the HTTP status (403).
    :param message: the ``message`` of the JSON body.
    :param error_type: the ``x-amzn-ErrorType`` header.
    """

    status: int
    message: str
    error_type: str


_MISSING_TOKEN = Refusal(403, "Missing Authentication Token", "MissingAuthenticationTokenException")
_FORBIDDEN = Refusal(403, "Forbidden", "ForbiddenException")
_MISMATCH = Refusal(403, "The request signature we calculated does not match the signature "
                         "you provided. Check your AWS Secret Access Key and signing method.",
                    "InvalidSignatureException")


def _incomplete(detail: str) -> Refusal:
    return Refusal(403, f"Authorization header is malformed: {detail}",
                   "IncompleteSignatureException")


def _header(headers: Mapping[str, str | list[str]], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return ",".join(value) if isinstance(value, list) else value
    return None


@dataclass
class EndpointAuthenticator:
    """Checks requests against an endpoint's authentication mode (see the module doc).

    :param mode: ``"iam"``, ``"api_key"`` or ``"none"``.
    :param region: the API's region (the SigV4 scope must name it).
    :param api_key: the key's value (``"api_key"`` mode).
    :param credentials: botocore credentials whose signatures are verified, e.g. the
        server's own; keyed by access key id.
    :param accept_unknown_signers: accept a well-formed signature by an access key the
        server does not know (it cannot be verified); ``False`` refuses it.
    :param service: the SigV4 service the scope must name: ``execute-api`` (REST and HTTP
        API) or ``lambda`` (function URL).
    """

    mode: str
    region: str = "us-east-1"
    api_key: str | None = field(default=None, repr=False)
    credentials: dict[str, Any] = field(default_factory=dict, repr=False)
    accept_unknown_signers: bool = True
    service: str = EXECUTE_API

    def __post_init__(self) -> None:
        self.mode = check_endpoint_auth(self.mode)
        if self.mode == "api_key" and not self.api_key:
            raise EndpointAuthError("an API_KEY endpoint needs the key's value to check "
                                    "requests against")

    @classmethod
    def for_stack(cls, clients: Any, stack: str | Mapping[str, Any], *,
                  credentials: Iterable[Any] = (),
                  accept_unknown_signers: bool = True) -> EndpointAuthenticator:
        """The authenticator of a deployed stack: its mode, key, region and signing
        service (its front door's).

        :param clients: the clients the server runs with; their credentials are known
            signers.
        :param stack: the stack's name, or its ``describe_stacks`` entry.
        :param credentials: further known signers (botocore credentials).
        :param accept_unknown_signers: see the class.
        :raises EndpointAuthError: when an ``API_KEY`` stack's key cannot be read.
        """
        described = resolve_stack(clients, stack)
        mode = endpoint_auth_of(described)
        key = None
        if mode == "api_key":
            try:
                key = api_key_value(clients, described)
            except EndpointAuthError:
                raise
            except Exception as exc:  # botocore ClientError, connection errors
                raise EndpointAuthError(
                    f"cannot read the API key of stack {described.get('StackName')!r} "
                    f"(apigateway:GetApiKey): {exc}") from exc
        known: dict[str, Any] = {}
        for creds in (clients.credentials(), *credentials):
            if creds is not None:
                known[creds.access_key] = creds
        door = front_door_of(outputs_of(described))
        return cls(mode, region=clients.region_name, api_key=key, credentials=known,
                   accept_unknown_signers=accept_unknown_signers,
                   service=signing_service("", door))

    def check(self, method: str, url: str, headers: Mapping[str, str | list[str]],
              body: bytes | None, now: datetime | None = None) -> Refusal | None:
        """``None`` when the request may reach the function, else why not.

        :param method: the HTTP method.
        :param url: the full URL as the client addressed it (``http://host:port/path?q``).
        :param headers: the request headers.
        :param body: the request body.
        :param now: the current time (for tests).
        """
        if self.mode == "none":
            return None
        if self.mode == "api_key":
            sent = _header(headers, "x-api-key") or ""
            assert self.api_key is not None
            if not hmac.compare_digest(sent.encode(), self.api_key.encode()):
                return _FORBIDDEN
            return None
        return self._check_sigv4(method, url, headers, body or b"", now or datetime.now(UTC))

    def _check_sigv4(self, method: str, url: str, headers: Mapping[str, str | list[str]],
                     body: bytes, now: datetime) -> Refusal | None:
        authorization = _header(headers, "authorization")
        if not authorization:
            return _MISSING_TOKEN
        match = _AUTH_RE.match(authorization.strip())
        if not match:
            return _incomplete("expected 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., "
                               "Signature=...'")
        parts = match.group("credential").split("/")
        if len(parts) != 5 or parts[4] != "aws4_request" or not re.fullmatch(r"\d{8}", parts[1]):
            return _incomplete("Credential must be <key id>/<yyyymmdd>/<region>/<service>/"
                               "aws4_request")
        key_id, day, scope_region, service = parts[:4]
        if service != self.service:
            return _incomplete(f"the credential scope names the service {service!r}, not "
                               f"{self.service!r}")
        if scope_region != self.region:
            return _incomplete(f"the credential scope names the region {scope_region!r}, not "
                               f"{self.region!r}")
        signed = match.group("signed").split(";")
        if "host" not in signed or "x-amz-date" not in signed:
            return _incomplete("SignedHeaders must include host and x-amz-date")
        missing = [name for name in signed if _header(headers, name) is None]
        if missing:
            return _incomplete(f"signed headers {missing} are missing from the request")
        amz_date = _header(headers, "x-amz-date") or ""
        try:
            when = datetime.strptime(amz_date, _AMZ_DATE_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return _incomplete("X-Amz-Date must be yyyymmddThhmmssZ")
        if amz_date[:8] != day:
            return _incomplete("X-Amz-Date is not on the credential scope's day")
        if abs(now - when) > MAX_CLOCK_SKEW:
            return Refusal(403, f"Signature expired: {amz_date} is more than 5 min from now",
                           "InvalidSignatureException")
        content_sha = _header(headers, "x-amz-content-sha256")
        if content_sha is not None and content_sha != hashlib.sha256(body).hexdigest():
            return _MISMATCH
        creds = self.credentials.get(key_id)
        if creds is None:
            if self.accept_unknown_signers:
                log.info("SigV4 request by an access key this server does not know: accepted "
                         "as well formed, its signature not verified")
                return None
            return Refusal(403, "The security token included in the request is invalid.",
                           "UnrecognizedClientException")
        token = _header(headers, "x-amz-security-token")
        token_signed = "x-amz-security-token" in signed
        if (creds.token or token) and (token != creds.token or not token_signed):
            return Refusal(403, "The security token included in the request is invalid.",
                           "UnrecognizedClientException")
        expected = _signature(creds, self.service, self.region, method, url,
                              {name: _header(headers, name) or "" for name in signed},
                              body, amz_date)
        if not hmac.compare_digest(expected, match.group("signature")):
            return _MISMATCH
        return None


def _signature(credentials: Any, service: str, region: str, method: str, url: str,
               signed_headers: Mapping[str, str], body: bytes, amz_date: str) -> str:
    """The SigV4 signature botocore computes for this request at ``amz_date``."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    auth = SigV4Auth(credentials, service, region)
    request = AWSRequest(method=method, url=url, data=body, headers=dict(signed_headers))
    request.context["timestamp"] = amz_date
    canonical = auth.canonical_request(request)
    return str(auth.signature(auth.string_to_sign(request, canonical), request))
