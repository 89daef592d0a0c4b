"""The request checks of the local API (SigV4, API key, open), without any AWS."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tdv_airflow.endpoint.verify import EndpointAuthenticator
from tdv_airflow.exceptions import EndpointAuthError

URL = "http://127.0.0.1:8080/prod/predict"
BODY = b'{"rows": [[1, 2]]}'
KNOWN = Credentials("AKIAKNOWN0000000000", "the-known-secret")


def signed(creds: Credentials = KNOWN, body: bytes = BODY, url: str = URL,
           region: str = "us-east-1", service: str = "execute-api") -> tuple[dict[str, str],
                                                                            datetime]:
    """Headers as botocore signs them (with the Host the HTTP client would send)."""
    request = AWSRequest(method="POST", url=url, data=body,
                         headers={"Content-Type": "application/json"})
    SigV4Auth(creds, service, region).add_auth(request)
    headers = dict(request.headers.items())
    headers["Host"] = url.split("/")[2]
    when = datetime.strptime(headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return headers, when


def iam(**kw: Any) -> EndpointAuthenticator:
    return EndpointAuthenticator("iam", region="us-east-1",
                                 credentials={KNOWN.access_key: KNOWN}, **kw)


def test_a_signature_by_known_credentials_is_verified() -> None:
    headers, now = signed()
    assert iam().check("POST", URL, headers, BODY, now) is None


@pytest.mark.parametrize("change,reason", [
    ("body", "does not match"),
    ("path", "does not match"),
    ("secret", "does not match"),
    ("signed-header", "does not match"),
    ("content-sha", "does not match"),
])
def test_a_tampered_request_is_refused(change: str, reason: str) -> None:
    creds = Credentials(KNOWN.access_key, "another-secret") if change == "secret" else KNOWN
    headers, now = signed(creds)
    body, url = BODY, URL
    if change == "body":
        body = b'{"rows": [[9, 9]]}'
    elif change == "path":
        url = URL.replace("/prod/", "/dev/")
    elif change == "signed-header":
        headers["Content-Type"] = "text/plain"
    elif change == "content-sha":
        headers["X-Amz-Content-SHA256"] = hashlib.sha256(b"other").hexdigest()
    refusal = iam().check("POST", url, headers, body, now)
    assert refusal is not None and refusal.status == 403
    assert reason in refusal.message


@pytest.mark.parametrize("case,reason", [
    ("missing", "Missing Authentication Token"),
    ("garbage", "malformed"),
    ("service", "not 'execute-api'"),
    ("region", "region 'eu-west-1'"),
    ("expired", "Signature expired"),
    ("no-date", "missing from the request"),
])
def test_a_malformed_or_stale_signature_is_refused(case: str, reason: str) -> None:
    kw: dict[str, Any] = {}
    if case == "service":
        kw["service"] = "lambda"
    if case == "region":
        kw["region"] = "eu-west-1"
    headers, now = signed(**kw)
    if case == "missing":
        del headers["Authorization"]
    elif case == "garbage":
        headers["Authorization"] = "Bearer abc"
    elif case == "expired":
        now += timedelta(minutes=6)
    elif case == "no-date":
        del headers["X-Amz-Date"]
    refusal = iam().check("POST", URL, headers, BODY, now)
    assert refusal is not None and refusal.status == 403
    assert reason in refusal.message


def test_an_unknown_signer_is_accepted_only_when_allowed() -> None:
    stranger = Credentials("AKIASTRANGER0000000", "their-secret")
    headers, now = signed(stranger)
    assert iam().check("POST", URL, headers, BODY, now) is None
    refusal = iam(accept_unknown_signers=False).check("POST", URL, headers, BODY, now)
    assert refusal is not None and "security token" in refusal.message


def test_a_session_token_must_be_the_credentials_own() -> None:
    temporary = Credentials("ASIATEMP00000000000", "temp-secret", "the-token")
    auth = EndpointAuthenticator("iam", credentials={temporary.access_key: temporary})
    headers, now = signed(temporary)
    assert auth.check("POST", URL, headers, BODY, now) is None
    headers["X-Amz-Security-Token"] = "another-token"
    refusal = auth.check("POST", URL, headers, BODY, now)
    assert refusal is not None and "security token" in refusal.message


def test_api_key_mode_compares_the_key() -> None:
    auth = EndpointAuthenticator("api_key", api_key="k" * 40)
    assert auth.check("POST", URL, {"x-api-key": "k" * 40}, BODY) is None
    for sent in ({"x-api-key": "k" * 39}, {}, {"Authorization": "k" * 40}):
        refusal = auth.check("POST", URL, sent, BODY)
        assert refusal is not None and refusal.message == "Forbidden"
    assert "k" * 40 not in repr(auth)
    with pytest.raises(EndpointAuthError, match="needs the key's value"):
        EndpointAuthenticator("api_key")


def test_none_mode_is_open() -> None:
    assert EndpointAuthenticator("none").check("POST", URL, {}, None) is None
