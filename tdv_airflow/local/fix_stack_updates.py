"""Emulator fidelity: stack updates in moto's CloudFormation answer as AWS does.

moto 5.2.5 differs from AWS in three ways that tdv-airflow's stack code depends on:

* **An update that changes nothing.** AWS refuses an ``UpdateStack`` whose template,
  parameters, tags and service role equal the stack's current ones with
  ``ValidationError: No updates are to be performed.``; moto compares the raw incoming
  parameters with its resolved ones (defaults filled in, numbers parsed), so it answers
  ``UPDATE_COMPLETE`` to almost every identical update, and it ignores tags, so it refuses
  a tags-only update that AWS performs. :func:`install` compares what AWS compares: the
  parsed template, the effective parameters (template defaults, passed values,
  ``UsePreviousValue``), the tags (none passed: the previous ones stay) and the role (none
  passed: the previous one stays).
* **An update that fails.** On AWS a resource that refuses its update fails the stack
  update, which rolls back to ``UPDATE_ROLLBACK_COMPLETE`` with the previous template,
  parameters and tags; moto has no failed update. Stack tags are propagated to the
  resources, and IAM and CloudWatch Logs accept only tag keys and values matching
  ``[\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*`` (values up to 256 characters, keys 1 to 128): with this
  fix an update whose tags break that rule fails on the first ``AWS::IAM::Role`` or
  ``AWS::Logs::LogGroup`` of the template, with the events AWS shows (the resource's
  ``UPDATE_FAILED`` with the service's message, ``UPDATE_ROLLBACK_IN_PROGRESS`` naming it,
  ``UPDATE_ROLLBACK_COMPLETE``). Tests that must pass tdv-airflow's own tag checks force
  the same failure with the test hook :data:`FAIL_UPDATE_TAG` (a stack tag whose value
  becomes the resource's failure message; on AWS it is an ordinary tag).
* **LastUpdatedTime.** AWS sets a stack's ``LastUpdatedTime`` on every update (also one
  that rolls back); moto never does. tdv-airflow folds it into its ``ClientRequestToken``.

Creates, change sets and deletes are untouched. :mod:`tdv_airflow.local.moto_server`
calls :func:`install` before the server starts. Without moto the module is not
importable (the ``local`` extra).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any

#: The stack tag that makes the emulator fail a stack update (a test hook): its value is
#: the failure message of the first resource that carries the stack's tags.
FAIL_UPDATE_TAG = "tdv-emulator:fail-update"
#: Resource types whose service enforces the IAM/Logs tag rule, with the service name
#: CloudFormation's message gives.
TAG_RULE_SERVICES = {"AWS::IAM::Role": "Iam", "AWS::Logs::LogGroup": "CloudWatchLogs"}
#: The tag rule as AWS writes it.
TAG_PATTERN = r"[\p{L}\p{Z}\p{N}_.:/=+\-@]*"
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
#: The stack status an update that failed ends in.
ROLLED_BACK = "UPDATE_ROLLBACK_COMPLETE"


def allowed_tag_text(text: str, max_length: int) -> bool:
    """Whether ``text`` passes IAM's and CloudWatch Logs' tag rule.

    :param text: a tag key or value.
    :param max_length: 128 for keys, 256 for values.
    """
    return len(text) <= max_length and all(
        ch in _TAG_PUNCTUATION or unicodedata.category(ch)[0] in "LZN" for ch in text)


def _refusal(tags: Mapping[str, str]) -> str | None:
    """The message a tag-checking resource answers to ``tags``, or ``None`` if it takes them."""
    if FAIL_UPDATE_TAG in tags:
        return str(tags[FAIL_UPDATE_TAG]) or "update failed (emulator test hook)"
    for index, (key, value) in enumerate(tags.items(), start=1):
        for text, member, limit in ((key, "key", 128), (value, "value", 256)):
            if not allowed_tag_text(text, limit):
                return (f"1 validation error detected: Value '{text}' at "
                        f"'tags.{index}.member.{member}' failed to satisfy constraint: Member "
                        f"must satisfy regular expression pattern: {TAG_PATTERN}")
    return None


def failing_resource(template: Mapping[str, Any], tags: Mapping[str, str] | None
                     ) -> tuple[str, str, str] | None:
    """The resource that refuses an update's tags: ``(logical id, type, reason)``.

    :param template: the parsed template of the update.
    :param tags: the update's tags (``None``: the previous tags stay, nothing fails).
    """
    message = _refusal(tags) if tags else None
    if message is None:
        return None
    for logical_id, resource in (template.get("Resources") or {}).items():
        service = TAG_RULE_SERVICES.get(str(resource.get("Type")))
        if service is not None:
            return (logical_id, str(resource["Type"]),
                    f'Resource handler returned message: "{message}" (Service: {service}, '
                    "Status Code: 400)")
    return None


def _resource_event(stack: Any, logical_id: str, kind: str, status: str,
                    reason: str | None = None) -> None:
    from moto.cloudformation.models import Event

    resource = stack.resource_map._parsed_resources.get(logical_id)
    physical = getattr(resource, "physical_resource_id", "") or ""
    event = Event(stack_id=stack.stack_id, stack_name=stack.name,
                  logical_resource_id=logical_id, physical_resource_id=str(physical),
                  resource_type=kind, resource_status=status,
                  resource_status_reason=reason, resource_properties=None)
    event.sendToSns(stack.account_id, stack.region_name, stack.notification_arns)
    stack.events.append(event)


def roll_back(stack: Any, logical_id: str, kind: str, reason: str) -> None:
    """Record a failed update of ``stack`` and its rollback; leave the stack as it was.

    :param stack: moto's ``Stack``.
    :param logical_id: the resource that refused the update.
    :param kind: its resource type.
    :param reason: its failure message.
    """
    from moto.core.utils import utcnow

    stack._add_stack_event("UPDATE_IN_PROGRESS", resource_status_reason="User Initiated")
    _resource_event(stack, logical_id, kind, "UPDATE_IN_PROGRESS")
    _resource_event(stack, logical_id, kind, "UPDATE_FAILED", reason)
    stack._add_stack_event(
        "UPDATE_ROLLBACK_IN_PROGRESS",
        resource_status_reason=f"The following resource(s) failed to update: [{logical_id}]. ")
    _resource_event(stack, logical_id, kind, "UPDATE_IN_PROGRESS")
    _resource_event(stack, logical_id, kind, "UPDATE_COMPLETE")
    stack._add_stack_event("UPDATE_ROLLBACK_COMPLETE_CLEANUP_IN_PROGRESS")
    stack._add_stack_event(ROLLED_BACK)
    stack.status = ROLLED_BACK
    stack.last_updated_time = utcnow()


def effective_parameters(template: Mapping[str, Any], given: Mapping[str, Any]
                         ) -> dict[str, str]:
    """The template's parameter defaults overlaid with the given values, as strings.

    :param template: a parsed template.
    :param given: parameter values by name.
    """
    values = {name: slot.get("Default") for name, slot in
              (template.get("Parameters") or {}).items()}
    values.update(given)
    return {name: str(value) for name, value in values.items()}


def changes_nothing(stack: Any, template: Mapping[str, Any], incoming: list[dict[str, Any]],
                    tags: Mapping[str, str] | None, role_arn: str | None) -> bool:
    """Whether an ``UpdateStack`` would leave ``stack`` as it is.

    :param stack: moto's ``Stack``.
    :param template: the update's parsed template.
    :param incoming: the update's ``Parameters``.
    :param tags: its tags (``None``: unchanged).
    :param role_arn: its ``RoleARN`` (``None``: unchanged).
    """
    given = {p["ParameterKey"]: (stack.parameters.get(p["ParameterKey"])
                                 if p.get("UsePreviousValue") else p.get("ParameterValue"))
             for p in incoming}
    return (template == stack.template_dict
            and effective_parameters(template, given)
            == effective_parameters(stack.template_dict, stack.parameters)
            and (tags is None or dict(tags) == dict(stack.tags))
            and (role_arn is None or role_arn == stack.role_arn))


def install() -> None:
    """Make identical updates refused, failing updates roll back, and updates dated
    (idempotent)."""
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.models import Stack
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.utils import utcnow

    if getattr(Stack.update, "_tdv_fix", False):
        return
    moto_check = CloudFormationResponse._validate_different_update
    moto_update = Stack.update

    def validate_different_update(self: Any, incoming_params: Any, stack_body: str,
                                  old_stack: Any) -> None:
        if self._get_action() != "UpdateStack":  # change sets: moto's own check
            moto_check(self, incoming_params, stack_body, old_stack)
            return
        tags = {t["Key"]: t["Value"] for t in self._get_param("Tags", [])} or None
        if changes_nothing(old_stack, Stack.parse_template(stack_body), incoming_params or [],
                           tags, self._get_param("RoleARN")):
            raise ValidationError(old_stack.name, message="No updates are to be performed.")

    def update(self: Any, template: str, role_arn: str | None = None,
               parameters: dict[str, Any] | None = None,
               tags: dict[str, str] | None = None) -> None:
        refused = failing_resource(Stack.parse_template(template), tags)
        if refused is not None:
            roll_back(self, *refused)
            return
        moto_update(self, template, role_arn, parameters=parameters, tags=tags)
        self.last_updated_time = utcnow()

    update._tdv_fix = True  # type: ignore[attr-defined]
    CloudFormationResponse._validate_different_update = validate_different_update  # type: ignore[method-assign]
    Stack.update = update  # type: ignore[method-assign]
