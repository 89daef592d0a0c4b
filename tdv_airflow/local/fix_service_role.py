"""Emulator fidelity: CloudFormation creates a stack's IAM roles as its service role.

On AWS, a stack created with ``RoleARN`` makes every call with the service role's
credentials (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html).
Creating an ``AWS::IAM::Role`` calls ``iam:CreateRole`` (whose request context holds
``iam:PermissionsBoundary`` when the role has a boundary), ``iam:PutRolePolicy`` for each
inline policy and ``iam:AttachRolePolicy`` (with ``iam:PolicyARN``) for each managed
policy, under the same boundary key
(https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html).
A call the service role may not make fails the resource (``CREATE_FAILED``, "... is not
authorized to perform: iam:CreateRole ...") and the stack rolls back to
``ROLLBACK_COMPLETE``. This is what stops a template from creating an administrator role
when the service role may create roles only under a permissions boundary
(https://docs.aws.amazon.com/IAM/latest/UserGuide/access_policies_boundaries.html).

moto 5.2 creates every resource without any IAM check, so a service role that forbids a
role without the boundary still gets one. When moto enforces IAM (started with
``INITIAL_NO_AUTH_ACTION_COUNT``), :func:`install` checks those three actions against the
service role's policies (through :func:`tdv_airflow.local.iam_policy.decide`) while a
stack is created; a refused role fails the stack as AWS does: a ``CREATE_FAILED`` event
naming the action, the resources created before it deleted, ``ROLLBACK_COMPLETE``. Not
modelled: the other calls CloudFormation makes as the service role (Lambda, Logs, API
Gateway, ``iam:PassRole``, tags), stack updates, and the boundary's effect on the role's
own requests. Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import Any

from tdv_airflow.exceptions import EmulatedAccessDeniedError

#: The service role of the stack being created (``None`` outside such a creation).
_SERVICE_ROLE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tdv_service_role", default=None)
#: The session name CloudFormation gives the service role's session.
SESSION_NAME = "AWSCloudFormation"


def role_calls(properties: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """The IAM calls (action, condition keys) that create a role with ``properties``.

    :param properties: the resolved ``AWS::IAM::Role`` properties.
    """
    boundary = properties.get("PermissionsBoundary")
    context = {"iam:PermissionsBoundary": str(boundary)} if boundary else {}
    calls = [("iam:CreateRole", context)]
    calls += [("iam:PutRolePolicy", context) for _ in properties.get("Policies") or []]
    calls += [("iam:AttachRolePolicy", {**context, "iam:PolicyARN": str(arn)})
              for arn in properties.get("ManagedPolicyArns") or []]
    return calls


def _enforcing() -> bool:
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return bool(ActionAuthenticatorMixin.request_count
                >= settings.INITIAL_NO_AUTH_ACTION_COUNT)


def _service_role_documents(service_role_arn: str, account_id: str, partition: str
                            ) -> list[dict[str, Any]]:
    from moto.iam.models import iam_backends

    from tdv_airflow.local.iam_policy import document_of

    backend = iam_backends[account_id][partition]
    name = backend.get_role_by_arn(service_role_arn).name
    documents = [document_of(backend.get_role_policy(name, policy)[1])
                 for policy in backend.list_role_policies(name)]
    attached, _ = backend.list_attached_role_policies(name)
    return documents + [document_of(policy) for policy in attached]


def check_role(service_role_arn: str, role_name: str, properties: Mapping[str, Any],
               account_id: str, partition: str, logical_id: str) -> None:
    """Refuse the role when the service role may not create it.

    :param service_role_arn: the stack's service role.
    :param role_name: the physical name of the new role.
    :param properties: its resolved properties.
    :param account_id: the account.
    :param partition: the partition.
    :param logical_id: the role's logical id in the template.
    :raises EmulatedAccessDeniedError: naming the refused action, as AWS's reason does.
    """
    from tdv_airflow.local.iam_policy import ALLOW, decide

    path = str(properties.get("Path") or "/")
    role_arn = f"arn:{partition}:iam::{account_id}:role{path}{role_name}"
    documents = _service_role_documents(service_role_arn, account_id, partition)
    caller = (f"arn:{partition}:sts::{account_id}:assumed-role/"
              f"{service_role_arn.rsplit('/', 1)[-1]}/{SESSION_NAME}")
    for action, context in role_calls(properties):
        if decide(documents, action, role_arn, context) != ALLOW:
            raise EmulatedAccessDeniedError(
                logical_id, "AWS::IAM::Role",
                f"User: {caller} is not authorized to perform: {action} on resource: "
                f"{role_arn} because no identity-based policy allows the {action} action "
                f"(Service: Iam, Status Code: 403, Error Code: AccessDenied)")


def _roll_back(stack: Any, denied: EmulatedAccessDeniedError) -> None:
    """Fail ``stack`` as CloudFormation does when a resource cannot be created."""
    from moto.cloudformation.models import Event

    stack.events.append(Event(
        stack_id=stack.stack_id, stack_name=stack.name, logical_resource_id=denied.logical_id,
        physical_resource_id="", resource_type=denied.resource_type,
        resource_status="CREATE_FAILED", resource_status_reason=denied.reason,
        resource_properties=None))
    stack._add_stack_event("ROLLBACK_IN_PROGRESS", resource_status_reason=(
        f"The following resource(s) failed to create: [{denied.logical_id}]. "
        "Rollback requested by user."))
    stack.status = "ROLLBACK_IN_PROGRESS"
    stack.resource_map.delete()
    stack._add_stack_event("ROLLBACK_COMPLETE")
    stack.status = "ROLLBACK_COMPLETE"


def install() -> None:
    """Check the service role when a stack creates a role (idempotent)."""
    from moto.cloudformation.models import Stack
    from moto.iam.models import Role
    from moto.utilities.utils import get_partition

    if getattr(Stack.create_resources, "tdv_fix", None) == __name__:
        return
    create_resources = Stack.create_resources
    create_role = Role.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def checked_create_resources(self: Any) -> None:
        if not self.role_arn or not _enforcing():
            create_resources(self)
            return
        token = _SERVICE_ROLE.set(self.role_arn)
        try:
            create_resources(self)
        except EmulatedAccessDeniedError as denied:
            _roll_back(self, denied)
        finally:
            _SERVICE_ROLE.reset(token)

    def checked_create_role(cls: Any, resource_name: str, cloudformation_json: dict[str, Any],
                            account_id: str, region_name: str, **kwargs: Any) -> Any:
        service_role = _SERVICE_ROLE.get()
        if service_role is not None:
            properties = cloudformation_json.get("Properties") or {}
            check_role(service_role, str(properties.get("RoleName", resource_name)),
                       properties, account_id, get_partition(region_name),
                       str(kwargs.get("LogicalId", resource_name)))
        return create_role(cls, resource_name, cloudformation_json, account_id, region_name,
                           **kwargs)

    checked_create_resources.tdv_fix = __name__  # type: ignore[attr-defined]
    Stack.create_resources = checked_create_resources  # type: ignore[method-assign]
    Role.create_from_cloudformation_json = classmethod(  # type: ignore[assignment]
        checked_create_role)
