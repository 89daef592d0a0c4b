"""Emulator fidelity: Lambda requests are authorised as on AWS, when moto enforces IAM.

On AWS an identity policy can scope Lambda actions to one function, version or alias
(``arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME``, ``...:NAME:VERSION``,
``...:NAME:ALIAS``) or layer version, and ``lambda:AddPermission`` to one principal with
the ``lambda:Principal`` condition key (Lambda developer guide, "Fine-tuning the
Resources and Conditions sections of policies":
https://docs.aws.amazon.com/lambda/latest/dg/lambda-api-permissions-ref.html; Service
Authorization Reference: https://docs.aws.amazon.com/service-authorization/latest/reference/list_awslambda.html).
moto 5.2, when it enforces IAM (``INITIAL_NO_AUTH_ACTION_COUNT``):

- refuses the signature of every Lambda request without a body (``GetFunction``,
  ``GetAlias``, ``GetPolicy``, ``ListVersionsByFunction``, ``DeleteFunction`` ...): it
  re-signs them with the query string, or the headers, as the payload;
- authorises every Lambda action on Resource ``*``, so a policy scoped to some functions
  is either refused everything or, widened to ``*``, allowed every function;
- names the invoke action ``lambda:Invoke`` (AWS: ``lambda:InvokeFunction``) and
  ``GetLayerVersionByArn`` its own action (AWS authorises it as ``lambda:GetLayerVersion``).

:func:`install` makes Lambda requests signed over their real (empty) payload, and
evaluates the caller's policies for them with :func:`tdv_airflow.local.iam_policy.decide`
on the ARN the request addresses (the qualified ARN when a ``Qualifier`` is given, in the
query or the function name), with AWS's action names and ``lambda:Principal``. Alias
requests (``/aliases``) and the function's own (``PublishVersion``,
``ListVersionsByFunction``) are evaluated on the function's unqualified ARN. Requests of
other services are checked as moto does. Without moto the module is not importable (the
``local`` extra); :mod:`tdv_airflow.local.moto_server` calls :func:`install`.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

#: moto's action names -> the IAM actions AWS authorises them as.
AWS_ACTIONS = {"lambda:Invoke": "lambda:InvokeFunction",
               "lambda:GetLayerVersionByArn": "lambda:GetLayerVersion"}
_FUNCTION = re.compile(r"^/[^/]+/functions/(?P<name>[^/]+)(?P<rest>/.*)?$")
_LAYER = re.compile(r"^/[^/]+/layers/(?P<name>[^/]+)/versions/(?P<version>\d+)(?:/.*)?$")
_BODYLESS = ("GET", "HEAD", "DELETE")


def lambda_resource(path: str, partition: str, region: str, account_id: str) -> str:
    """The ARN a Lambda request is authorised on (``*`` when it addresses none).

    :param path: the request's path and query (``/2015-03-31/functions/NAME/...?...``).
    :param partition: the partition.
    :param region: the region.
    :param account_id: the account.
    """
    parts = urlsplit(path)
    route, query = unquote(parts.path), parse_qs(parts.query)
    layer = _LAYER.match(route)
    if layer:
        return (f"arn:{partition}:lambda:{region}:{account_id}:layer:{layer['name']}:"
                f"{layer['version']}")
    if route.rstrip("/").endswith("/layers") and query.get("Arn"):
        return query["Arn"][0]  # GetLayerVersionByArn
    function = _FUNCTION.match(route)
    if not function:
        return "*"
    name = function["name"].split("function:", 1)[-1]
    name, _, qualifier = name.partition(":")
    if not (function["rest"] or "").startswith("/aliases"):
        qualifier = (query.get("Qualifier") or [qualifier])[0]
    else:
        qualifier = ""
    arn = f"arn:{partition}:lambda:{region}:{account_id}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def request_context(action: str, body: bytes) -> dict[str, str]:
    """The Lambda condition keys of a request: ``lambda:Principal`` for AddPermission.

    :param action: the IAM action.
    :param body: the request's JSON body.
    """
    if action != "lambda:AddPermission" or not body:
        return {}
    try:
        principal = json.loads(body).get("Principal")
    except (ValueError, AttributeError):
        return {}
    return {"lambda:Principal": str(principal)} if principal else {}


def install() -> None:
    """Authorise Lambda requests by their signature, ARN and AWS action (idempotent)."""
    from moto.iam.access_control import IAMRequestBase
    from moto.utilities.utils import get_partition

    from tdv_airflow.local.iam_policy import ALLOW, decide, document_of

    original_check = IAMRequestBase.check_action_permitted
    if getattr(original_check, "tdv_fix", None) == __name__:
        return
    original_request = IAMRequestBase._create_aws_request

    def create_aws_request(self: Any) -> Any:
        request = original_request(self)
        if self._service == "lambda" and self._method in _BODYLESS and not self._body:
            request.data = b""  # AWS signs these over an empty payload
        return request

    def check_action_permitted(self: Any, resource: str) -> None:
        if self._service != "lambda":
            original_check(self, resource)
            return
        self._action = AWS_ACTIONS.get(self._action, self._action)
        arn = lambda_resource(self._path, get_partition(self._region), self._region,
                              self.account_id)
        documents = [document_of(p) for p in self._access_key.collect_policies()]
        if decide(documents, self._action, arn,
                  request_context(self._action, self._body)) != ALLOW:
            self._raise_access_denied()

    check_action_permitted.tdv_fix = __name__  # type: ignore[attr-defined]
    IAMRequestBase._create_aws_request = create_aws_request  # type: ignore[method-assign]
    IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]
