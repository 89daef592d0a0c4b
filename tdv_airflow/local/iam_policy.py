"""IAM policy evaluation with conditions, for the emulator's fidelity fixes.

moto 5.2 enforces IAM (when started with ``INITIAL_NO_AUTH_ACTION_COUNT``) by action, and
for S3 by resource, but never reads a statement's ``Condition`` for a caller: a policy
that allows ``cloudformation:CreateStack`` only for one template URL, or
``iam:CreateRole`` only with one permissions boundary, allows everything. The fixes
:mod:`~tdv_airflow.local.fix_stack_conditions` and
:mod:`~tdv_airflow.local.fix_service_role` evaluate such requests with :func:`decide`,
which follows AWS's documented policy evaluation for one principal's identity policies
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):

- an explicit ``Deny`` that matches wins; otherwise a matching ``Allow`` allows;
  otherwise the request is implicitly denied;
- a statement matches when its ``Action`` (or ``NotAction``; case-insensitive, ``*`` and
  ``?`` wildcards), its ``Resource`` (or ``NotResource``) and every condition match;
- conditions (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html):
  the string, ARN, ``Bool`` and ``Null`` operators, with ``...IfExists``. Several values
  of one key are OR-ed; several keys and operators are AND-ed. Condition key names are
  case-insensitive. A key absent from the request makes a condition false, except for the
  negated operators and ``...IfExists`` (true) and ``Null``.

Anything else (set operators ``ForAllValues:``/``ForAnyValue:``, numeric and date
operators, policy variables) raises :class:`NotImplementedError`, so that a policy the
emulator cannot judge fails loudly instead of being allowed. Permissions boundaries,
session and resource policies are not evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

ALLOW = "allow"
EXPLICIT_DENY = "explicit_deny"
IMPLICIT_DENY = "implicit_deny"

_NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals",
            "ArnNotLike"}


def _pattern(value: str, ignore_case: bool = False) -> re.Pattern[str]:
    """A regular expression for an IAM wildcard string (``*`` any run, ``?`` one char)."""
    body = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
    return re.compile(f"^{body}$", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _listed(value: Any) -> list[str]:
    return [str(v) for v in (value if isinstance(value, list) else [value])]


def _string_match(operator: str, expected: str, actual: str) -> bool:
    base = operator.replace("Not", "")
    if base == "StringEquals":
        return actual == expected
    if base == "StringEqualsIgnoreCase":
        return actual.lower() == expected.lower()
    if base in {"StringLike", "ArnLike", "ArnEquals"}:
        if "${" in expected:
            raise NotImplementedError(f"policy variables are not evaluated: {expected!r}")
        return _pattern(expected).match(actual) is not None
    if base == "Bool":
        return actual.lower() == expected.lower()
    raise NotImplementedError(f"condition operator {operator!r} is not evaluated")


def _condition_holds(operator: str, key: str, expected: list[str],
                     context: Mapping[str, str]) -> bool:
    """Whether one operator/key pair of a ``Condition`` holds for ``context``."""
    if operator.startswith(("ForAllValues:", "ForAnyValue:")):
        raise NotImplementedError(f"set operator {operator!r} is not evaluated")
    if_exists = operator.endswith("IfExists")
    base = operator.removesuffix("IfExists")
    actual = context.get(key.lower())
    if base == "Null":
        return any((actual is None) == (value.lower() == "true") for value in expected)
    if actual is None:
        return if_exists or base in _NEGATED
    matched = any(_string_match(base, value, actual) for value in expected)
    return not matched if base in _NEGATED else matched


def _matches(statement: Mapping[str, Any], action: str, resource: str,
             context: Mapping[str, str]) -> bool:
    """Whether ``statement`` applies to this action, resource and request context."""
    if "NotAction" in statement:
        if any(_pattern(a, ignore_case=True).match(action)
               for a in _listed(statement["NotAction"])):
            return False
    elif not any(_pattern(a, ignore_case=True).match(action)
                 for a in _listed(statement.get("Action", []))):
        return False
    if "NotResource" in statement:
        if any(_pattern(r).match(resource) for r in _listed(statement["NotResource"])):
            return False
    elif not any(_pattern(r).match(resource) for r in _listed(statement.get("Resource", "*"))):
        return False
    for operator, keys in (statement.get("Condition") or {}).items():
        for key, expected in keys.items():
            if not _condition_holds(operator, key, _listed(expected), context):
                return False
    return True


def decide(documents: Iterable[Mapping[str, Any]], action: str, resource: str,
           context: Mapping[str, str] | None = None) -> str:
    """The decision of a principal's identity policies on one request.

    :param documents: the policy documents (parsed JSON).
    :param action: e.g. ``iam:CreateRole``.
    :param resource: the ARN the action is on.
    :param context: the request's condition keys and their values (single-valued).
    :returns: :data:`ALLOW`, :data:`EXPLICIT_DENY` or :data:`IMPLICIT_DENY`.
    """
    keys = {k.lower(): v for k, v in (context or {}).items()}
    allowed = False
    for document in documents:
        statements = document.get("Statement", [])
        for statement in statements if isinstance(statements, list) else [statements]:
            if _matches(statement, action, resource, keys):
                if statement.get("Effect") == "Deny":
                    return EXPLICIT_DENY
                allowed = True
    return ALLOW if allowed else IMPLICIT_DENY


def document_of(policy: Any) -> dict[str, Any]:
    """A policy document from what moto's IAM backend holds: a JSON string, a parsed
    document, a ``{"policy_document": ...}`` entry, or a managed policy object.

    :param policy: one of moto's policy representations.
    """
    if hasattr(policy, "versions"):
        policy = next(v.document for v in policy.versions if v.is_default)
    if isinstance(policy, Mapping) and "policy_document" in policy:
        policy = policy["policy_document"]
    if isinstance(policy, str):
        return dict(json.loads(policy))
    return dict(policy)
