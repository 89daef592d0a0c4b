"""Calling a deployed endpoint the way its authentication mode asks.

The stack's ``EndpointAuth`` output says how ``POST /predict`` authenticates its callers:

- ``AWS_IAM`` (``endpoint_auth="iam"``, the default): the request is signed with AWS
  Signature Version 4 for the service ``execute-api`` (REST and HTTP API), by an identity
  allowed ``execute-api:Invoke`` on the API, or for the service ``lambda`` (a function
  URL, ``FrontDoor`` ``URL``), by an identity allowed ``lambda:InvokeFunctionUrl``;
- ``API_KEY`` (REST API only): the request carries the stack's API key in the
  ``x-api-key`` header; the stack outputs only the key's id (``ApiKeyId``),
  :func:`api_key_value` reads its value;
- ``NONE``: nothing is needed (a public endpoint).

:func:`call_stack_endpoint` posts to a deployed stack's endpoint (its ``ApiEndpoint``
output, or a function URL's address read from Lambda,
:func:`tdv_airflow.core.front_door_aws.endpoint_status`) with what its mode needs (it
reads the mode and, for ``API_KEY``, the key itself)::

    from tdv_airflow.endpoint.client import call_stack_endpoint
    answer = call_stack_endpoint(clients, "iris", {"features": [[5.1, 3.5, 1.4, 0.2]]})
    answer.status, answer.json()

:func:`call_endpoint` does the same for any URL and a mode the caller names (the tests
against ``tdv-local-run serve`` use it). How the local server checks such requests is
:mod:`tdv_airflow.endpoint.verify`.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tdv_airflow.core.front_door import AUTH_MODES, check_front_door
from tdv_airflow.core.front_door_aws import endpoint_status, front_door_of
from tdv_airflow.core.stacks import describe, outputs_of
from tdv_airflow.core.validation import ENDPOINT_AUTH_MODES, check_endpoint_auth
from tdv_airflow.exceptions import EndpointAuthError, StackNotFoundError

log = logging.getLogger(__name__)

#: The SigV4 service name of API Gateway's invoke endpoints.
EXECUTE_API = "execute-api"
#: The SigV4 service name of Lambda function URLs.
LAMBDA = "lambda"
_HOST_RE = re.compile(r"^[a-z0-9]+\.execute-api\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(\.cn)?$")
_URL_HOST_RE = re.compile(r"^[a-z0-9]+\.lambda-url\.(?P<region>[a-z0-9-]+)\.on\.aws$")
_TEMPLATE_TO_MODE = {value: mode for mode, value in ENDPOINT_AUTH_MODES.items()}


# ------------------------------------------------------------------ the stack's mode

def resolve_stack(clients: Any, stack: str | Mapping[str, Any]) -> Mapping[str, Any]:
    """A stack's ``describe_stacks`` entry.

    :param clients: clients with a ``cloudformation`` client.
    :param stack: the stack's name (described now), or its entry (returned as it is).
    :raises StackNotFoundError: when the named stack does not exist.
    """
    if not isinstance(stack, str):
        return stack
    found = describe(clients.cloudformation, stack)
    if found is None:
        raise StackNotFoundError(stack)
    return found


def endpoint_auth_of(stack: Mapping[str, Any]) -> str:
    """The mode a stack was deployed with: ``"iam"``, ``"api_key"`` or ``"none"``.

    Read from the ``EndpointAuth`` output, else the parameter; a stack with neither (made
    by a tdv-airflow before endpoint authentication, or a custom template) is ``"none"``,
    which is what such stacks served.

    :param stack: a ``describe_stacks`` entry.
    """
    params = {p["ParameterKey"]: p.get("ParameterValue") for p in stack.get("Parameters") or []}
    value = outputs_of(stack).get("EndpointAuth") or params.get("EndpointAuth")
    if not value:
        log.warning("stack %s declares no EndpointAuth: treating its endpoint as public",
                    stack.get("StackName"))
        return "none"
    return check_endpoint_auth(_TEMPLATE_TO_MODE.get(str(value), str(value)))


def api_key_value(clients: Any, stack: str | Mapping[str, Any]) -> str:
    """The value of a stack's API key (``EndpointAuth`` ``API_KEY``).

    The stack outputs only the key's id; this reads the value with
    ``apigateway:GetApiKey`` (``includeValue=True``), which the caller's identity needs
    (see ``docs/iam.md``). Keep the value out of logs and XCom.

    :param clients: :class:`~tdv_airflow.core.clients.AwsClients` (or anything with a
        ``cloudformation`` and an ``apigateway`` client).
    :param stack: the stack's name, or its ``describe_stacks`` entry.
    :raises EndpointAuthError: when the stack has no API key.
    """
    described = resolve_stack(clients, stack)
    outputs = outputs_of(described)
    key_id = outputs.get("ApiKeyId")
    if not key_id:
        raise EndpointAuthError(
            f"stack {described.get('StackName')!r} has no ApiKeyId output: it was not "
            f"deployed with endpoint_auth='api_key' (its EndpointAuth is "
            f"{outputs.get('EndpointAuth')!r})")
    value = clients.apigateway.get_api_key(apiKey=key_id, includeValue=True).get("value")
    if not value:
        raise EndpointAuthError(f"API Gateway returned no value for the API key {key_id} of "
                                f"stack {described.get('StackName')!r}")
    return str(value)


# ------------------------------------------------------------------------ the client

@dataclass(frozen=True)
class EndpointResponse:
    """What the endpoint answered.

    :param status: the HTTP status.
    :param headers: the response headers.
    :param body: the response body.
    """

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def region_of(url: str, session: Any = None) -> str:
    """The region a request to ``url`` is signed for.

    :param url: an ``https://{api}.execute-api.{region}.amazonaws.com/...`` or
        ``https://{url-id}.lambda-url.{region}.on.aws/`` URL, or a local one.
    :param session: a boto3 Session (or :class:`~tdv_airflow.core.clients.AwsClients`)
        whose region is used for a local URL.
    :raises EndpointAuthError: when neither gives a region.
    """
    host = urllib.parse.urlsplit(url).hostname or ""
    match = _HOST_RE.match(host) or _URL_HOST_RE.match(host)
    if match:
        return match.group("region")
    region = getattr(session, "region_name", None)
    if not region:
        raise EndpointAuthError(f"cannot tell the region of {url!r}: pass a session with "
                                "a region (or region=...)")
    return str(region)


def signing_service(url: str, front_door: str | None = None) -> str:
    """The SigV4 service a request to ``url`` is signed for: ``lambda`` for a function
    URL, ``execute-api`` for an API.

    :param url: the endpoint.
    :param front_door: the stack's front door when known (``"url"``: ``lambda``); a local
        URL does not tell.
    """
    if front_door is not None:
        return LAMBDA if check_front_door(front_door) == "url" else EXECUTE_API
    host = urllib.parse.urlsplit(url).hostname or ""
    return LAMBDA if _URL_HOST_RE.match(host) else EXECUTE_API


def _body(payload: Any) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload).encode("utf-8")


def _signing_credentials(session: Any, credentials: Any) -> Any:
    if credentials is None:
        if session is None:
            import boto3

            session = boto3.Session()
        credentials = session.get_credentials()
    if credentials is None:
        raise EndpointAuthError("endpoint_auth 'iam' needs AWS credentials to sign the "
                                "request, and the session has none")
    frozen = getattr(credentials, "get_frozen_credentials", None)
    return frozen() if frozen is not None else credentials


def call_endpoint(
    url: str,
    payload: Any,
    auth_mode: str,
    session: Any = None,
    api_key: str | None = None,
    *,
    region: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 35.0,
    credentials: Any = None,
    front_door: str | None = None,
) -> EndpointResponse:
    """POST ``payload`` to ``url`` with what ``auth_mode`` needs.

    ``"iam"`` signs the request with SigV4 (service ``execute-api``, or ``lambda`` for a
    function URL: :func:`signing_service`) using the session's credentials;
    ``"api_key"`` sends ``api_key`` in ``x-api-key`` (REST API only); ``"none"`` sends
    neither. An HTTP error status is returned, not raised.

    :param url: the endpoint (the stack's ``ApiEndpoint`` output, or a local server's
        ``/predict`` URL). Plain ``http`` only to a loopback address.
    :param payload: ``bytes``/``str`` sent as they are, anything else as JSON.
    :param auth_mode: ``"iam"``, ``"api_key"`` or ``"none"`` (or the template's names).
    :param session: a boto3 Session whose credentials sign (``"iam"``); default: boto3's
        default chain.
    :param api_key: the key's value (``"api_key"``), e.g. from :func:`api_key_value`.
    :param region: the signing region (default: from the URL, else the session's).
    :param headers: further request headers.
    :param timeout: seconds to wait for the answer (API Gateway gives up after 29 s).
    :param credentials: botocore credentials that sign instead of the session's, e.g.
        :meth:`AwsClients.credentials() <tdv_airflow.core.clients.AwsClients.credentials>`.
    :param front_door: ``"rest"``, ``"http"`` or ``"url"`` when known (default: told by
        the URL's host; a local URL is an API's).
    :raises EndpointAuthError: when the URL, the credentials or the key are unusable, or
        an API key is sent to a front door without API keys.
    """
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    mode = check_endpoint_auth(auth_mode)
    service = signing_service(url, front_door)
    door = front_door or ("url" if service == LAMBDA else None)
    if door is not None and mode not in AUTH_MODES[check_front_door(door)]:
        raise EndpointAuthError(f"endpoint_auth {mode!r} does not exist on front_door "
                                f"{door!r}: expected one of {list(AUTH_MODES[door])} (API "
                                "keys exist only on the REST API)")
    split = urllib.parse.urlsplit(url)
    if split.scheme not in ("http", "https") or not split.hostname:
        raise EndpointAuthError(f"endpoint URL {url!r} must be an http(s) URL")
    if split.scheme == "http" and not _is_loopback(split.hostname):
        raise EndpointAuthError(f"refusing plain http to {split.hostname!r}: credentials and "
                                "payloads go over https except to a loopback address")
    request = AWSRequest(method="POST", url=url, data=_body(payload),
                         headers={"Content-Type": "application/json", **(headers or {})})
    if mode == "iam":
        SigV4Auth(_signing_credentials(session, credentials), service,
                  region or region_of(url, session)).add_auth(request)
    elif mode == "api_key":
        if not api_key:
            raise EndpointAuthError("endpoint_auth 'api_key' needs api_key=...: read it with "
                                    "tdv_airflow.endpoint.client.api_key_value(clients, stack)")
        request.headers["x-api-key"] = api_key
    prepared = request.prepare()
    http_request = urllib.request.Request(  # noqa: S310 - scheme checked above (http(s) only)
        prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers.items()))
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as resp:  # noqa: S310 - same checked URL
            answer = EndpointResponse(resp.status, dict(resp.headers.items()), resp.read())
    except urllib.error.HTTPError as exc:
        answer = EndpointResponse(exc.code, dict(exc.headers.items()), exc.read())
    log.debug("POST %s (%s, %s): %s", url, mode, service, answer.status)
    return answer


def call_stack_endpoint(clients: Any, stack: str | Mapping[str, Any], payload: Any, *,
                        session: Any = None, headers: Mapping[str, str] | None = None,
                        timeout: float = 35.0) -> EndpointResponse:
    """POST ``payload`` to a deployed stack's endpoint with what its mode needs.

    The endpoint is the stack's ``ApiEndpoint`` output (REST and HTTP API), or the
    function URL of its alias ``live`` (``FrontDoor`` ``URL``; read with
    ``lambda:GetFunctionUrlConfig``, it exists once a version was promoted). The mode
    comes from the stack (:func:`endpoint_auth_of`): ``"iam"`` signs with the
    session's credentials, else the clients' own (:meth:`AwsClients.credentials()
    <tdv_airflow.core.clients.AwsClients.credentials>`), for the URL's region (the
    clients' for a local URL); ``"api_key"`` sends the stack's key
    (:func:`api_key_value`, which needs ``apigateway:GetApiKey``); ``"none"`` sends
    neither. An HTTP error status is returned, not raised.

    :param clients: :class:`~tdv_airflow.core.clients.AwsClients` of the stack's account
        and region.
    :param stack: the stack's name, or its ``describe_stacks`` entry.
    :param payload: ``bytes``/``str`` sent as they are, anything else as JSON.
    :param session: a boto3 Session whose credentials sign (``"iam"``); default: the
        clients' credentials.
    :param headers: further request headers.
    :param timeout: seconds to wait for the answer.
    :raises StackNotFoundError: when the named stack does not exist.
    :raises EndpointAuthError: when the stack has no endpoint (no ``ApiEndpoint`` output;
        no function URL before the first promotion), or its mode's credentials or key are
        unusable.
    """
    described = resolve_stack(clients, stack)
    target = stack_endpoint(clients, described)
    mode = target.auth_mode
    api_key = api_key_value(clients, described) if mode == "api_key" else None
    credentials = None
    if mode == "iam" and session is None:
        credentials = clients.credentials()
    return call_endpoint(target.url, payload, mode, session=session, api_key=api_key,
                         region=region_of(target.url, clients), headers=headers,
                         timeout=timeout, credentials=credentials,
                         front_door=target.front_door)


@dataclass(frozen=True)
class StackEndpoint:
    """Where a deployed stack answers, and how it is called.

    :param url: the endpoint.
    :param auth_mode: ``"iam"``, ``"api_key"`` or ``"none"``.
    :param front_door: ``"rest"``, ``"http"`` or ``"url"``.
    """

    url: str
    auth_mode: str
    front_door: str

    @property
    def service(self) -> str:
        """The SigV4 service an ``iam`` request is signed for."""
        return signing_service(self.url, self.front_door)


def stack_endpoint(clients: Any, stack: str | Mapping[str, Any]) -> StackEndpoint:
    """A stack's endpoint, mode and front door: the ``ApiEndpoint`` output of an API, the
    function URL of the alias ``live`` (``lambda:GetFunctionUrlConfig``) of a URL.

    :param clients: clients of the stack's account and region.
    :param stack: the stack's name, or its ``describe_stacks`` entry.
    :raises StackNotFoundError: when the named stack does not exist.
    :raises EndpointAuthError: when it has no endpoint (yet), saying why.
    """
    described = resolve_stack(clients, stack)
    outputs = outputs_of(described)
    door = front_door_of(outputs)
    url, reason = endpoint_status(clients.lambda_, outputs) if door == "url" \
        else (outputs.get("ApiEndpoint"), None)
    if not url:
        raise EndpointAuthError(
            f"stack {described.get('StackName')!r} has no endpoint: "
            + (reason or "it has no ApiEndpoint output: it is not a tdv-airflow endpoint "
               f"stack, or it is not complete (its status is "
               f"{described.get('StackStatus')})"))
    return StackEndpoint(str(url), endpoint_auth_of(described), door)
