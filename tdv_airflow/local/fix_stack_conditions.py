"""Emulator fidelity: the caller's CloudFormation condition keys on CreateStack/UpdateStack.

On AWS, the request context of ``cloudformation:CreateStack`` and ``UpdateStack`` holds
``cloudformation:TemplateUrl`` (the ``TemplateURL`` given) and ``cloudformation:RoleArn``
(the ``RoleARN`` given), so an identity policy can allow stacks only from templates under
one S3 prefix and only with one service role; a request without the parameter has no such
key and fails a condition on it (Service Authorization Reference, CloudFormation
condition keys:
https://docs.aws.amazon.com/service-authorization/latest/reference/list_awscloudformation.html;
example policy "Require a specific template URL":
https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/security_iam_id-based-policy-examples.html).
moto 5.2, even when it enforces IAM, ignores every ``Condition`` of the caller's
policies, so such a policy allows an inline ``TemplateBody``, any URL and any role.

When moto enforces IAM, :func:`install` makes it evaluate the caller's policies for these
two actions with those two keys, through
:func:`tdv_airflow.local.iam_policy.decide`, on the stack's ARN; a request they do not
allow is refused with ``AccessDenied``, as on AWS, and one they allow passes (moto's own
check would also let a conditional ``Deny`` refuse everything: it treats an unevaluated
condition as met). Every other action is checked as moto does.
:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The actions whose condition keys are evaluated.
STACK_ACTIONS = ("cloudformation:CreateStack", "cloudformation:UpdateStack")
#: Request parameter -> condition key.
CONDITION_KEYS = {"TemplateURL": "cloudformation:TemplateUrl",
                  "RoleARN": "cloudformation:RoleArn"}
#: The id part of a stack ARN not created yet (any id matches ``stack/NAME/*``).
NEW_STACK_ID = "00000000-0000-0000-0000-000000000000"


def _first(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        return str(value[0]) if value else None
    return None if value is None else str(value)


def stack_request_context(data: Mapping[str, Any]) -> dict[str, str]:
    """The CloudFormation condition keys of a CreateStack/UpdateStack request.

    :param data: the request's parameters as moto parsed them (name -> values).
    """
    context: dict[str, str] = {}
    for parameter, key in CONDITION_KEYS.items():
        value = _first(data.get(parameter))
        if value:
            context[key] = value
    return context


def stack_arn(partition: str, region: str, account_id: str, name: str) -> str:
    """The ARN a stack request is authorised on.

    :param partition: the partition.
    :param region: the region.
    :param account_id: the account.
    :param name: the ``StackName`` given (a name, or a stack ARN on update).
    """
    if name.startswith("arn:"):
        return name
    return f"arn:{partition}:cloudformation:{region}:{account_id}:stack/{name}/{NEW_STACK_ID}"


def install() -> None:
    """Evaluate the caller's CloudFormation condition keys (idempotent)."""
    from moto.iam.access_control import IAMRequestBase
    from moto.utilities.utils import get_partition

    from tdv_airflow.local.iam_policy import ALLOW, decide, document_of

    original = IAMRequestBase.check_action_permitted
    if getattr(original, "tdv_fix", None) == __name__:
        return

    def check_action_permitted(self: Any, resource: str) -> None:
        if self._action in STACK_ACTIONS:
            context = stack_request_context(self._data)
            arn = stack_arn(get_partition(self._region), self._region, self.account_id,
                            _first(self._data.get("StackName")) or "")
            documents = [document_of(p) for p in self._access_key.collect_policies()]
            if decide(documents, self._action, arn, context) != ALLOW:
                self._raise_access_denied()
            return
        original(self, resource)

    check_action_permitted.tdv_fix = __name__  # type: ignore[attr-defined]
    IAMRequestBase.check_action_permitted = check_action_permitted  # type: ignore[method-assign]
