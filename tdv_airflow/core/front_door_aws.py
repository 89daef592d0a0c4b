"""What the core makes sure of on the front door at every live step, and where its
endpoint is.

* REST API and HTTP API (``FrontDoor`` ``REST``/``HTTP``): the stack declares the API and
  its integration to ``FUNCTION:live``; the core lets API Gateway invoke the alias
  (:func:`ensure_invoke_permission`, with the API's ``execute-api`` ARN of
  ``POST /predict``, :func:`source_arn_of`, the same pattern for both kinds of API).
* Function URL (``FrontDoor`` ``URL``): a URL must name the alias ``live``, which the core
  creates at the first promotion (CloudFormation could not reference it at the first
  create), so the core owns the URL like the alias (:func:`ensure_function_url`):
  ``CreateFunctionUrlConfig(Qualifier="live", AuthType=...)`` or an update of its
  ``AuthType``; for ``NONE`` the two public statements AWS requires since October 2025
  (``lambda:InvokeFunctionUrl`` with ``FunctionUrlAuthType NONE`` and
  ``lambda:InvokeFunction`` with ``InvokedViaFunctionUrl``), removed again when the auth
  becomes ``AWS_IAM``. No CORS. Its endpoint is read back with ``GetFunctionUrlConfig``
  (:func:`function_url`).

Every call is idempotent: a retried or re-run step adds nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from tdv_airflow.core.versions import LIVE_ALIAS

log = logging.getLogger(__name__)

#: The statement letting API Gateway invoke the alias (added with the alias).
PERMISSION_SID = "tdv-airflow-api-live"
#: The public statements of a function URL with ``AuthType`` ``NONE``, by statement id:
#: ``AddPermission`` arguments beside function, qualifier and statement id.
PUBLIC_URL_STATEMENTS: dict[str, dict[str, Any]] = {
    "tdv-airflow-url-public": {"Action": "lambda:InvokeFunctionUrl", "Principal": "*",
                               "FunctionUrlAuthType": "NONE"},
    "tdv-airflow-url-public-invoke": {"Action": "lambda:InvokeFunction", "Principal": "*",
                                      "InvokedViaFunctionUrl": True},
}
#: The template's ``EndpointAuth`` values and a function URL's ``AuthType`` for them.
URL_AUTH_TYPES = {"AWS_IAM": "AWS_IAM", "NONE": "NONE"}
#: Why a URL front door has no endpoint yet.
NO_URL_YET = ("the function URL is created on the alias 'live' when the first validated "
              "version is promoted: there is no endpoint before that")


def _statement_ids(lam: Any, function_name: str) -> set[str]:
    """The statement ids of the alias ``live``'s resource policy (none without one)."""
    try:
        policy = json.loads(lam.get_policy(FunctionName=function_name,
                                           Qualifier=LIVE_ALIAS)["Policy"])
    except lam.exceptions.ResourceNotFoundException:
        return set()
    return {str(s.get("Sid")) for s in policy.get("Statement") or []}


def _add(lam: Any, function_name: str, sid: str, **arguments: Any) -> bool:
    try:
        lam.add_permission(FunctionName=function_name, Qualifier=LIVE_ALIAS, StatementId=sid,
                           **arguments)
    except lam.exceptions.ResourceConflictException:
        return False
    return True


def ensure_invoke_permission(lam: Any, function_name: str, source_arn: str) -> bool:
    """Let API Gateway invoke the ``live`` alias (once; a retry adds nothing).

    :param lam: a Lambda client.
    :param function_name: the function.
    :param source_arn: the API's ``execute-api`` ARN pattern (``.../*/POST/predict``).
    :returns: whether the permission was added now.
    """
    if PERMISSION_SID in _statement_ids(lam, function_name):
        return False
    return _add(lam, function_name, PERMISSION_SID, Action="lambda:InvokeFunction",
                Principal="apigateway.amazonaws.com", SourceArn=source_arn)


def source_arn_of(stack: Mapping[str, Any], api_id: str) -> str:
    """The ``execute-api`` ARN pattern of the stack's ``POST /predict`` (REST API: any
    stage; HTTP API: its ``$default`` stage).

    :param stack: the stack's ``describe_stacks`` entry (its id gives partition, region
        and account).
    :param api_id: the API's id.
    """
    _, partition, _, region, account, _ = str(stack["StackId"]).split(":", 5)
    return f"arn:{partition}:execute-api:{region}:{account}:{api_id}/*/POST/predict"


def function_url(lam: Any, function_name: str) -> str | None:
    """The URL of the alias ``live`` (``None`` while it has none).

    :param lam: a Lambda client.
    :param function_name: the function.
    """
    try:
        got = lam.get_function_url_config(FunctionName=function_name, Qualifier=LIVE_ALIAS)
    except lam.exceptions.ResourceNotFoundException:
        return None
    return str(got["FunctionUrl"])


def ensure_function_url(lam: Any, function_name: str, endpoint_auth: str) -> dict[str, Any]:
    """Make sure the alias ``live`` has its function URL with the stack's auth type, and
    the resource policy that auth type needs.

    :param lam: a Lambda client.
    :param function_name: the function (its alias ``live`` exists).
    :param endpoint_auth: the stack's ``EndpointAuth`` (``AWS_IAM`` or ``NONE``).
    :returns: ``{"url", "auth_type", "changed"}``.
    :raises ValueError: for another auth (the core refuses it before any upload).
    """
    auth = URL_AUTH_TYPES.get(endpoint_auth)
    if auth is None:
        raise ValueError(f"a function URL has no EndpointAuth {endpoint_auth!r}: expected "
                         f"one of {sorted(URL_AUTH_TYPES)}")
    changed = False
    try:
        got = lam.get_function_url_config(FunctionName=function_name, Qualifier=LIVE_ALIAS)
        if got.get("AuthType") != auth:
            got = lam.update_function_url_config(FunctionName=function_name,
                                                 Qualifier=LIVE_ALIAS, AuthType=auth)
            changed = True
    except lam.exceptions.ResourceNotFoundException:
        try:
            got = lam.create_function_url_config(FunctionName=function_name,
                                                 Qualifier=LIVE_ALIAS, AuthType=auth)
        except lam.exceptions.ResourceConflictException:  # a concurrent step made it
            got = lam.get_function_url_config(FunctionName=function_name,
                                              Qualifier=LIVE_ALIAS)
        changed = True
    present = _statement_ids(lam, function_name)
    for sid, arguments in PUBLIC_URL_STATEMENTS.items():
        if auth == "NONE" and sid not in present:
            changed = _add(lam, function_name, sid, **arguments) or changed
        elif auth != "NONE" and sid in present:  # no longer public
            lam.remove_permission(FunctionName=function_name, Qualifier=LIVE_ALIAS,
                                  StatementId=sid)
            changed = True
    if changed:
        log.info("function URL of %s:%s (%s): %s", function_name, LIVE_ALIAS, auth,
                 got["FunctionUrl"])
    return {"url": str(got["FunctionUrl"]), "auth_type": auth, "changed": changed}


def ensure_front_door(lam: Any, function_name: str, front_door: str, source_arn: str,
                      endpoint_auth: str) -> None:
    """What a live step makes sure of: API Gateway's permission on the alias, or the
    alias's function URL.

    :param lam: a Lambda client.
    :param function_name: the function.
    :param front_door: ``"rest"``, ``"http"`` or ``"url"``.
    :param source_arn: the API's ``execute-api`` ARN pattern (REST and HTTP API).
    :param endpoint_auth: the stack's ``EndpointAuth`` (function URL).
    """
    if front_door == "url":
        ensure_function_url(lam, function_name, endpoint_auth)
    else:
        ensure_invoke_permission(lam, function_name, source_arn)


def front_door_of(outputs: Mapping[str, Any]) -> str:
    """A stack's front door from its ``FrontDoor`` output (``"rest"`` without one: the
    stacks before front doors).

    :param outputs: the stack's outputs.
    """
    return str(outputs.get("FrontDoor") or "REST").lower()


def endpoint_status(lam: Any, outputs: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """A stack's endpoint and, when it has none, why: the ``ApiEndpoint`` output of an API,
    the live alias's URL of a function URL.

    :param lam: a Lambda client (read only for a function URL).
    :param outputs: the stack's outputs.
    :returns: ``(endpoint, reason)``: one of the two is ``None``.
    """
    if front_door_of(outputs) != "url":
        endpoint = outputs.get("ApiEndpoint")
        return (str(endpoint), None) if endpoint else (None, "the stack has no ApiEndpoint "
                                                       "output")
    url = function_url(lam, str(outputs.get("FunctionName")))
    return (url, None) if url else (None, NO_URL_YET)


def with_url_endpoint(lam: Callable[[], Any], result: Mapping[str, Any]) -> dict[str, Any]:
    """The sensor contract of a finished stack (:func:`tdv_airflow.core.deployment.endpoint_of`)
    with a function URL's endpoint: its ``api_endpoint`` is the alias ``live``'s URL, and
    ``api_endpoint_reason`` says why there is none yet (:data:`NO_URL_YET`). A REST or
    HTTP API's contract is returned as it is (its ``ApiEndpoint`` output).

    :param lam: gives a Lambda client (called for a function URL only).
    :param result: the contract (``outputs`` included).
    """
    outputs = result.get("outputs") or {}
    if front_door_of(outputs) != "url":
        return dict(result)
    endpoint, reason = endpoint_status(lam(), outputs)
    if reason:
        log.warning("stack %s has no endpoint yet: %s", result.get("stack_name"), reason)
    return {**result, "api_endpoint": endpoint, "api_endpoint_reason": reason}
