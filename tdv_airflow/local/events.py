"""The events a request to each front door becomes, and what API Gateway makes of the
function's answers out.

:func:`api_gateway_event` builds the REST API's proxy event (payload format 1.0),
:func:`http_api_event` the HTTP API's (payload format 2.0, route ``POST /predict``) and
:func:`function_url_event` a function URL's (the same 2.0 shape, route ``$default``);
:func:`function_event` and :func:`request_event` build the one of a deployed function's
front door (:attr:`DeployedFunction.front_door
<tdv_airflow.local.find.DeployedFunction.front_door>`, the stack's ``FrontDoor``
output); :func:`check_proxy_response`
turns a handler's return value into what API Gateway would answer (the value itself, or
``502 Internal server error`` when it is not a valid proxy response, as
:func:`gateway_error` gives for a failing function).
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tdv_airflow.local.find import DeployedFunction

log = logging.getLogger(__name__)

#: API Gateway's answer when the function fails, times out or answers malformed data.
INTERNAL_ERROR = {"message": "Internal server error"}


def api_gateway_event(
    body: str | bytes | None,
    *,
    method: str = "POST",
    path: str = "/predict",
    resource: str = "/predict",
    headers: Mapping[str, str | Sequence[str]] | None = None,
    query: Mapping[str, str | Sequence[str]] | None = None,
    stage: str = "prod",
    api_id: str = "local",
    region: str = "us-east-1",
    account_id: str = "123456789012",
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway REST API proxy event (payload format 1.0).

    :param body: the request body; bytes that are not UTF-8 travel base64-encoded.
    :param method: the HTTP method.
    :param path: the request path without the stage (e.g. ``/predict``).
    :param resource: the matched API resource.
    :param headers: request headers (a list value gives repeated headers).
    :param query: query string parameters (a list value gives repeated parameters).
    :param stage: the API stage.
    :param api_id: the REST API id.
    :param region: the region.
    :param account_id: the account id.
    :param source_ip: the caller's address.
    """
    multi_headers = {k: [v] if isinstance(v, str) else list(v)
                     for k, v in (headers or {}).items()}
    multi_query = {k: [v] if isinstance(v, str) else list(v) for k, v in (query or {}).items()}
    text, is_base64 = _body_text(body)
    now = datetime.now(UTC)
    request_id = str(uuid.uuid4())
    user_agent = next((v[-1] for k, v in multi_headers.items() if k.lower() == "user-agent"),
                      None)
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": base64.b32encode(uuid.uuid4().bytes).decode()[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": account_id,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": api_id,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {"sourceIp": source_ip, "userAgent": user_agent, "caller": None,
                         "user": None, "accountId": None, "accessKey": None,
                         "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                         "cognitoAuthenticationType": None,
                         "cognitoAuthenticationProvider": None, "userArn": None,
                         "principalOrgId": None},
            "domainName": f"{api_id}.execute-api.{region}.amazonaws.com",
            "apiId": api_id,
        },
        "body": text,
        "isBase64Encoded": is_base64,
    }


def _body_text(body: str | bytes | None) -> tuple[str | None, bool]:
    """The event's ``body`` and ``isBase64Encoded``: bytes that are not UTF-8 travel
    base64-encoded."""
    if isinstance(body, bytes):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            return base64.b64encode(body).decode(), True
    return body, False


def http_api_event(
    body: str | bytes | None,
    *,
    method: str = "POST",
    path: str = "/predict",
    route_key: str | None = None,
    headers: Mapping[str, str | Sequence[str]] | None = None,
    query: Mapping[str, str | Sequence[str]] | None = None,
    api_id: str = "local",
    domain_name: str | None = None,
    region: str = "us-east-1",
    account_id: str = "123456789012",
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway HTTP API event, payload format 2.0 (a function URL's has the same
    shape: :func:`function_url_event`).

    As AWS builds it: header names in lower case, a repeated header or query parameter
    joined by commas, ``cookies`` apart, ``rawPath``/``rawQueryString`` as sent, the
    stage ``$default``.

    :param body: the request body; bytes that are not UTF-8 travel base64-encoded.
    :param method: the HTTP method.
    :param path: the request path (``$default`` stage: no stage segment).
    :param route_key: the matched route (default ``"{method} {path}"``).
    :param headers: request headers (a list value gives repeated headers).
    :param query: query string parameters (a list value gives repeated parameters).
    :param api_id: the API's id (a function URL's URL id).
    :param domain_name: the host (default the HTTP API's ``execute-api`` host).
    :param region: the region.
    :param account_id: the account id.
    :param source_ip: the caller's address.
    """
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in (headers or {}).items():
        values = [value] if isinstance(value, str) else list(value)
        if name.lower() == "cookie":
            cookies.extend(part.strip() for v in values for part in v.split(";") if part.strip())
            continue
        joined[name.lower()] = ",".join([*filter(None, [joined.get(name.lower())]), *values])
    pairs = [(k, v) for k, vs in (query or {}).items()
             for v in ([vs] if isinstance(vs, str) else list(vs))]
    text, is_base64 = _body_text(body)
    now = datetime.now(UTC)
    domain = domain_name or f"{api_id}.execute-api.{region}.amazonaws.com"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method} {path}",
        "rawPath": path,
        "rawQueryString": urllib.parse.urlencode(pairs),
        "headers": joined,
        "requestContext": {
            "accountId": account_id,
            "apiId": api_id,
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": source_ip, "userAgent": joined.get("user-agent", "")},
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key or f"{method} {path}",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": is_base64,
    }
    if cookies:
        event["cookies"] = cookies
    if pairs:
        grouped: dict[str, list[str]] = {}
        for key, value in pairs:
            grouped.setdefault(key, []).append(value)
        event["queryStringParameters"] = {k: ",".join(v) for k, v in grouped.items()}
    if text is not None:
        event["body"] = text
    return event


def function_url_event(body: str | bytes | None, *, url_id: str = "local",
                       region: str = "us-east-1", **kwargs: Any) -> dict[str, Any]:
    """A Lambda function URL's event: payload format 2.0 with the route ``$default`` (a
    function URL takes any method and path), ``apiId`` and domain of the URL.

    :param body: the request body.
    :param url_id: the URL's id (its host's first label).
    :param region: the region.
    :param kwargs: the rest of :func:`http_api_event`'s arguments.
    """
    return http_api_event(body, route_key="$default", api_id=url_id, region=region,
                          domain_name=f"{url_id}.lambda-url.{region}.on.aws", **kwargs)


def payload_body(payload: Any) -> str | bytes:
    """The request body for a payload: ``str`` and ``bytes`` verbatim (so malformed JSON
    can be sent too), anything else JSON-encoded.

    :param payload: the payload.
    """
    if isinstance(payload, str | bytes):
        return payload
    return json.dumps(payload)


def gateway_error(status: int = 502, payload: Mapping[str, Any] = INTERNAL_ERROR
                  ) -> dict[str, Any]:
    """An answer of API Gateway itself (not of the function), as a proxy response.

    :param status: the HTTP status.
    :param payload: the JSON body.
    """
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(dict(payload)), "isBase64Encoded": False}


def check_proxy_response(response: Any) -> dict[str, Any]:
    """What API Gateway makes of a function's answer: the answer itself when it is a
    valid proxy response, else 502 ``Internal server error``.

    :param response: the function's return value.
    """
    ok = (isinstance(response, dict)
          and isinstance(response.get("statusCode"), int)
          and not isinstance(response.get("statusCode"), bool)
          and isinstance(response.get("headers") or {}, dict)
          and isinstance(response.get("body", ""), str | None)
          and set(response) <= {"statusCode", "headers", "multiValueHeaders", "body",
                                "isBase64Encoded", "cookies"})
    if not ok:
        log.error("malformed Lambda proxy response: %.300r", response)
        return gateway_error()
    return response  # type: ignore[no-any-return]


def function_event(function: DeployedFunction, body: str | bytes | None, *,
                   method: str = "POST", path: str = "/predict",
                   headers: Mapping[str, str | Sequence[str]] | None = None,
                   query: Mapping[str, str | Sequence[str]] | None = None,
                   source_ip: str = "127.0.0.1") -> dict[str, Any]:
    """The event of a request to a deployed function's front door (its kind, stage, API
    id, region and account): payload 1.0 for a REST API, 2.0 for an HTTP API and a
    function URL.

    :param function: the deployed function.
    :param body: the request body.
    :param method: the HTTP method.
    :param path: the request path without the stage.
    :param headers: request headers.
    :param query: query string parameters.
    :param source_ip: the caller's address.
    """
    common: dict[str, Any] = {"method": method, "path": path, "headers": headers,
                              "query": query, "region": function.region,
                              "account_id": function.account_id, "source_ip": source_ip}
    if function.front_door == "url":
        return function_url_event(body, url_id=function.api_id, **common)
    if function.front_door == "http":
        return http_api_event(body, api_id=function.api_id, **common)
    return api_gateway_event(body, stage=function.stage_name, api_id=function.api_id,
                             **common)


def host_of(function: DeployedFunction) -> str:
    """The host a deployed function's front door answers on.

    :param function: the deployed function.
    """
    if function.front_door == "url":
        return f"{function.api_id}.lambda-url.{function.region}.on.aws"
    return f"{function.api_id}.execute-api.{function.region}.amazonaws.com"


def request_event(function: DeployedFunction, payload: Any, *, method: str = "POST",
                  headers: Mapping[str, str] | None = None, path: str = "/predict",
                  query: Mapping[str, str | Sequence[str]] | None = None) -> dict[str, Any]:
    """The event of a client's request to a deployed function's front door, with the
    headers API Gateway adds (``Host``, ``X-Forwarded-*``) and a JSON ``Content-Type`` by default.

    :param function: the deployed function.
    :param payload: the request payload (see :func:`payload_body`; ``None``: no body).
    :param method: the HTTP method.
    :param headers: request headers, over the defaults.
    :param path: the request path without the stage.
    :param query: query string parameters.
    """
    host = host_of(function)
    all_headers = {"Accept": "*/*", "Content-Type": "application/json", "Host": host,
                   "User-Agent": "tdv-local-run", "X-Forwarded-For": "127.0.0.1",
                   "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https", **(headers or {})}
    return function_event(function, payload_body(payload) if payload is not None else None,
                          method=method, path=path, headers=all_headers, query=query)
