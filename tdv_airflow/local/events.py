"""API Gateway REST (payload 1.0) proxy events in, and what API Gateway makes of the
function's answers out.

:func:`api_gateway_event` builds the event a request becomes (:func:`function_event`
and :func:`request_event` for a deployed function's API); :func:`check_proxy_response`
turns a handler's return value into what API Gateway would answer (the value itself, or
``502 Internal server error`` when it is not a valid proxy response, as
:func:`gateway_error` gives for a failing function).
"""

from __future__ import annotations

import base64
import json
import logging
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
    is_base64 = False
    text: str | None
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, is_base64 = base64.b64encode(body).decode(), True
    else:
        text = body
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
    """The event of a request to a deployed function's API (its stage, API id, region and
    account).

    :param function: the deployed function.
    :param body: the request body.
    :param method: the HTTP method.
    :param path: the request path without the stage.
    :param headers: request headers.
    :param query: query string parameters.
    :param source_ip: the caller's address.
    """
    return api_gateway_event(body, method=method, path=path, headers=headers, query=query,
                             stage=function.stage_name, api_id=function.api_id,
                             region=function.region, account_id=function.account_id,
                             source_ip=source_ip)


def request_event(function: DeployedFunction, payload: Any, *, method: str = "POST",
                  headers: Mapping[str, str] | None = None, path: str = "/predict",
                  query: Mapping[str, str | Sequence[str]] | None = None) -> dict[str, Any]:
    """The event of a client's request to a deployed function's API, with the headers
    API Gateway adds (``Host``, ``X-Forwarded-*``) and a JSON ``Content-Type`` by default.

    :param function: the deployed function.
    :param payload: the request payload (see :func:`payload_body`; ``None``: no body).
    :param method: the HTTP method.
    :param headers: request headers, over the defaults.
    :param path: the request path without the stage.
    :param query: query string parameters.
    """
    host = f"{function.api_id}.execute-api.{function.region}.amazonaws.com"
    all_headers = {"Accept": "*/*", "Content-Type": "application/json", "Host": host,
                   "User-Agent": "tdv-local-run", "X-Forwarded-For": "127.0.0.1",
                   "X-Forwarded-Port": "443", "X-Forwarded-Proto": "https", **(headers or {})}
    return function_event(function, payload_body(payload) if payload is not None else None,
                          method=method, path=path, headers=all_headers, query=query)
