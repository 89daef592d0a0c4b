"""Emulator fidelity: a stack update reaches every resource whose parameters changed.

On AWS, a stack update with new parameter values updates every resource whose resolved
properties change, however the template names the parameter: ``Ref``, a ``${Name}``
inside ``Fn::Sub``, or a condition the resource's ``Fn::If`` (or ``Condition``) uses.
moto 5.2 decides which resources to update from a diff that, when a resource's template
text is unchanged, only looks for ``Ref`` in that text; a resource that names a changed
parameter only inside ``Fn::Sub`` (the shipped template's role policy names the model
and pickle keys that way) or only through a condition is left as it was, so the update
never reaches it. :func:`install` adds those resources to the diff, as AWS would update
them. A resource with its own ``Condition`` is left to moto as it is (moto's update does
not create or delete a resource whose condition flips; adding it to the diff would update
one that does not exist). Nothing else in moto changes.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_MARK = "_tdv_sees_sub_and_conditions"
#: ``${Name}`` or ``${Name.Attribute}`` in an ``Fn::Sub`` string (``${!Literal}`` is not one).
_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9:]+)(?:\.[A-Za-z0-9.]+)?\}")


def names_used(node: Any, conditions: Mapping[str, Any], seen: set[str] | None = None
               ) -> set[str]:
    """The parameter (and resource) names ``node`` uses: ``Ref``, ``${Name}`` in
    ``Fn::Sub``, and those of every condition it uses, transitively.

    :param node: a piece of a template (a resource, a property value, a condition).
    :param conditions: the template's ``Conditions``.
    :param seen: conditions already followed (to stop on a cycle).
    """
    seen = set() if seen is None else seen
    found: set[str] = set()
    if isinstance(node, list):
        for item in node:
            found |= names_used(item, conditions, seen)
    if not isinstance(node, Mapping):
        return found
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            found.add(value)
        elif key == "Fn::Sub":
            text = value[0] if isinstance(value, list) and value else value
            if isinstance(text, str):
                found.update(_SUB_NAME.findall(text))
        used = (value[0] if key == "Fn::If" and isinstance(value, list) and value
                else value if key == "Condition" else None)
        if isinstance(used, str) and used in conditions and used not in seen:
            seen.add(used)
            found |= names_used(conditions[used], conditions, seen)
        found |= names_used(value, conditions, seen)
    return found


def install() -> None:
    """Make the update diff see ``Fn::Sub`` and condition parameters (idempotent)."""
    from moto.cloudformation.parsing import ResourceMap

    original = ResourceMap.build_resource_diff
    if getattr(original, _MARK, False):
        return

    def build_resource_diff(self: ResourceMap, other_template: dict[str, Any],
                            parameters: dict[str, Any] | None = None) -> dict[str, Any]:
        actions: dict[str, Any] = original(self, other_template, parameters)
        if not parameters:
            return actions
        changed = {name for name, value in parameters.items()
                   if self.input_parameters.get(name) != value}
        old = self._resource_json_map
        conditions = other_template.get("Conditions") or {}
        for name, resource in (other_template.get("Resources") or {}).items():
            if (name in old and resource == old[name] and name not in actions["Modify"]
                    and "Condition" not in resource
                    and changed & names_used(resource, conditions)):
                actions["Modify"].append(name)
        return actions

    setattr(build_resource_diff, _MARK, True)
    ResourceMap.build_resource_diff = build_resource_diff  # type: ignore[method-assign]
