"""One request to a deployed stack, or to one version of its function, wherever it runs.

:func:`request_stack` asks the stack as its callers do. On AWS the request goes through
the stack's API with the authentication its mode needs
(:func:`tdv_airflow.endpoint.client.call_stack_endpoint`). An emulator runs no Lambda
and routes no API Gateway request, so there the deployed function runs locally from the
code and layers the stack deploys, routed as the API routes (the ``live`` alias and its
weights; :class:`tdv_airflow.local.process.LocalFunction`).

:func:`request_version` asks one published version (a candidate) before any traffic
reaches it: on AWS a Lambda ``Invoke`` of the qualified version with the event its front
door sends for ``POST /predict`` (:func:`proxy_event`; the answer read as API Gateway
reads it); on an emulator the local runner on that version's own artifacts.

Which of the two is decided in one place,
:attr:`tdv_airflow.core.clients.AwsClients.emulator_endpoint`. Smoke tests
(``EndpointCheckOperator``), validation and the real-account acceptance script use it.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.core.front_door_aws import front_door_of
from tdv_airflow.core.stacks import outputs_of
from tdv_airflow.core.versions import check_version
from tdv_airflow.exceptions import UnknownVersionError
from tdv_airflow.local.alias_route import live_alias_of, stack_route
from tdv_airflow.local.events import (
    INTERNAL_ERROR,
    api_gateway_event,
    check_proxy_response,
    function_url_event,
    http_api_event,
    payload_body,
)
from tdv_airflow.local.find import described, function_name_of

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackAnswer:
    """What a stack (or one version of its function) answered.

    :param status: the HTTP status.
    :param body: the body, decoded as UTF-8 (undecodable bytes replaced).
    :param emulator: the emulator's endpoint when the function ran locally, else ``None``.
    :param version: the version that answered, when known (the local runner and a
        Lambda ``Invoke`` say; a request through the API on AWS does not).
    :param reason: why the stack's own answer says little: no live version yet, the
        invocation was refused, the function failed.
    """

    status: int
    body: str
    emulator: str | None
    version: str | None = None
    reason: str | None = None


def _text(response: Mapping[str, Any]) -> str:
    raw = response.get("body") or ""
    if response.get("isBase64Encoded"):
        return base64.b64decode(raw).decode("utf-8", errors="replace")
    return str(raw)


def _stack(clients: AwsClients, stack: str | Mapping[str, Any]) -> Mapping[str, Any]:
    return described(clients, stack) if isinstance(stack, str) else stack


def request_stack(clients: AwsClients, stack: str | Mapping[str, Any], payload: Any, *,
                  session: Any = None, rng: Callable[[], float] | None = None
                  ) -> StackAnswer:
    """POST ``payload`` to the stack: through its API on AWS, to its function run locally
    (routed as the API routes) on an emulator.

    :param clients: clients of the stack's account and region.
    :param stack: the stack's ``describe_stacks`` entry (or its name).
    :param payload: the request body (``bytes``/``str`` as they are, else JSON).
    :param session: a boto3 Session whose credentials sign an ``iam`` request on AWS
        (default: the clients' credentials).
    :param rng: the random source choosing a weighted alias's version on an emulator.
    :raises StackNotFoundError: when a named stack does not exist.
    """
    stack = _stack(clients, stack)
    emulator = clients.emulator_endpoint
    if emulator is not None:
        from tdv_airflow.local.process import invoke_once

        log.info("%s is an emulator, which runs no Lambda: running the deployed function of "
                 "stack %s locally", emulator, stack["StackName"])
        result = invoke_once(clients, stack["StackName"], payload, rng=rng)
        reason = (result.error or {}).get("errorMessage") if result.error else None
        return StackAnswer(int(result.response["statusCode"]), _text(result.response),
                           emulator, result.version, reason)
    from tdv_airflow.endpoint.client import call_stack_endpoint

    answer = call_stack_endpoint(clients, stack, payload, session=session)
    reason = no_live_version_reason(clients, stack) if answer.status == 500 else None
    return StackAnswer(answer.status, answer.body.decode("utf-8", errors="replace"), None,
                       None, reason)


def no_live_version_reason(clients: AwsClients, stack: Mapping[str, Any]) -> str | None:
    """Why a stack's API answers 500: its live alias does not exist yet (else ``None``).

    :param clients: clients of the stack's account and region.
    :param stack: the stack's ``describe_stacks`` entry.
    """
    alias = live_alias_of(stack)
    if not alias:
        return None
    try:
        return stack_route(clients, stack).reason
    except Exception as exc:  # only an explanation: a refused GetAlias must not hide the answer
        log.info("cannot read alias %s of stack %s: %s", alias, stack.get("StackName"), exc)
        return None


def proxy_event(clients: AwsClients, stack: Mapping[str, Any], payload: Any) -> dict[str, Any]:
    """The event of ``POST /predict`` with ``payload`` through the stack's front door (its
    id, stage, region and account), with the headers API Gateway adds: the REST API's
    proxy event (payload 1.0), or the HTTP API's or function URL's (payload 2.0).

    :param clients: clients of the stack's region.
    :param stack: the stack's ``describe_stacks`` entry.
    :param payload: the request payload (``str``/``bytes`` verbatim, else JSON).
    """
    outputs = outputs_of(stack)
    door = front_door_of(outputs)
    api_id = outputs.get("ApiId") or "local"
    region = clients.region_name
    parts = str(stack.get("StackId", "")).split(":")
    account = parts[4] if len(parts) > 4 and parts[4] else "123456789012"
    host = (f"{api_id}.lambda-url.{region}.on.aws" if door == "url"
            else f"{api_id}.execute-api.{region}.amazonaws.com")
    headers = {"Accept": "*/*", "Content-Type": "application/json", "Host": host,
               "User-Agent": "tdv-airflow-validation", "X-Forwarded-For": "127.0.0.1",
               "X-Forwarded-Port": "443",
               "X-Forwarded-Proto": "https"}
    body = payload_body(payload)
    if door == "url":
        return function_url_event(body, headers=headers, region=region, account_id=account)
    if door == "http":
        return http_api_event(body, headers=headers, api_id=api_id, region=region,
                              account_id=account)
    return api_gateway_event(body, headers=headers, api_id=api_id,
                             stage=outputs.get("StageName") or "prod", region=region,
                             account_id=account)


def request_version(clients: AwsClients, stack: str | Mapping[str, Any], version: Any,
                    payload: Any, *, workdir: Any = None) -> StackAnswer:
    """POST ``payload`` to one published version of the stack's function, which need not
    take any traffic: a candidate's validation.

    On AWS: ``Invoke`` of the function qualified by ``version`` with the API Gateway REST
    proxy event of ``POST /predict``; its proxy response is read as API Gateway reads it
    (a malformed one is ``502 Internal server error``), and a function error
    (``X-Amz-Function-Error``) becomes ``502`` with the error's payload as body, so that
    the failure can be quoted. On an emulator: the local runner on the version's own code,
    layers and environment.

    :param clients: clients of the stack's account and region.
    :param stack: the stack's ``describe_stacks`` entry (or its name).
    :param version: a published version number.
    :param payload: the request body (``bytes``/``str`` as they are, else JSON).
    :param workdir: the local runner's layout cache (emulator only).
    :raises InvalidInputError: when ``version`` is not a version number (before any call).
    :raises UnknownVersionError: when the function has no such version.
    """
    version = check_version(version)
    stack = _stack(clients, stack)
    emulator = clients.emulator_endpoint
    if emulator is not None:
        from tdv_airflow.local.process import invoke_once

        result = invoke_once(clients, stack["StackName"], payload, qualifier=version,
                             workdir=workdir)
        reason = (result.error or {}).get("errorMessage") if result.error else None
        return StackAnswer(int(result.response["statusCode"]), _text(result.response),
                           emulator, result.version, reason)
    return _invoke_version(clients, stack, version, payload)


def _invoke_version(clients: AwsClients, stack: Mapping[str, Any], version: str,
                    payload: Any) -> StackAnswer:
    from botocore.exceptions import ClientError

    lam = clients.lambda_
    name = function_name_of(clients, stack)
    event = proxy_event(clients, stack, payload)
    try:
        got = lam.invoke(FunctionName=name, Qualifier=version,
                         InvocationType="RequestResponse",
                         Payload=json.dumps(event).encode("utf-8"))
    except ClientError as exc:
        error = exc.response.get("Error") or {}
        if error.get("Code") == "ResourceNotFoundException":
            raise UnknownVersionError(f"function {name!r} of stack {stack['StackName']!r} "
                                      f"has no version {version!r}: {error.get('Message')}"
                                      ) from exc
        # The Lambda API refused the invocation: API Gateway answers 500.
        return StackAnswer(500, json.dumps(INTERNAL_ERROR), None, version,
                           f"Lambda refused to invoke version {version} of {name!r}: "
                           f"{error.get('Code')}: {error.get('Message')}")
    raw: bytes = got["Payload"].read()
    text = raw.decode("utf-8", errors="replace")
    executed = str(got.get("ExecutedVersion") or version)
    if got.get("FunctionError"):
        log.error("version %s of %s failed (%s): %s", executed, name, got["FunctionError"],
                  text[:2000])
        return StackAnswer(502, text, None, executed,
                           f"version {executed} of {name!r} failed ({got['FunctionError']})")
    try:
        returned = json.loads(raw)
    except ValueError:
        returned = None
    response = check_proxy_response(returned)
    reason = None if response is returned else (
        f"version {executed} of {name!r} returned no valid proxy response: {text[:300]}")
    return StackAnswer(int(response["statusCode"]), _text(response), None, executed, reason)
