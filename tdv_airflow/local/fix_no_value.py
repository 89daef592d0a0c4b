"""Emulator fidelity: ``AWS::NoValue`` in a list removes the element.

On AWS, ``{"Ref": "AWS::NoValue"}`` (usually the branch of an ``Fn::If``) removes what it
stands for: a property, or an element of a list, e.g. an optional statement of a policy
document or an optional ``Resource`` of a statement (pseudo parameters reference:
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/pseudo-parameter-reference.html).
moto 5.2 removes a property whose value resolves to nothing but keeps ``None`` in a list,
so the shipped template's role policy, whose previous-configuration resources and KMS
statement are such elements, comes out with ``null`` resources and statements.
:func:`install` drops the list elements that resolve to nothing, as AWS does. Nothing else
in moto changes.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_MARK = "_tdv_drops_no_value"


def install() -> None:
    """Make ``AWS::NoValue`` remove list elements (idempotent)."""
    from moto.cloudformation import parsing

    original = parsing.clean_json
    if getattr(original, _MARK, False):
        return

    def clean_json(resource_json: Any, resources_map: Any) -> Any:
        if not isinstance(resource_json, list):
            return original(resource_json, resources_map)
        cleaned = []
        for element in resource_json:
            value = clean_json(element, resources_map)
            if value is None and isinstance(element, Mapping):
                continue  # an intrinsic function that resolved to AWS::NoValue
            cleaned.append(value)
        return cleaned

    setattr(clean_json, _MARK, True)
    parsing.clean_json = clean_json
