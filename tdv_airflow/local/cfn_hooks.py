"""A step run after one of moto's CloudFormation model methods, for the fidelity fixes.

moto builds a stack's resources through each model's ``create_from_cloudformation_json``
and ``update_from_cloudformation_json`` classmethods. A fix that only has to apply what
moto leaves out (a property it does not pass on) wraps one of them with
:func:`run_after`: moto's own method runs unchanged, then the fix's step gets the resource
and the resource's template (its ``Properties`` resolved). Without moto the module is not
importable (the ``local`` extra).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


def run_after(model: type, method: str, step: Callable[[Any, dict[str, Any]], None],
              mark: str) -> bool:
    """Make ``model.method`` run ``step(resource, cloudformation_json)`` on its result.

    :param model: a moto ``CloudFormationModel`` subclass.
    :param method: ``"create_from_cloudformation_json"`` or
        ``"update_from_cloudformation_json"``.
    :param step: what to do with the created (or updated) resource and its template.
    :param mark: the fix's marker, so that installing it twice wraps once.
    :returns: whether the method was wrapped now (``False``: it already was).
    """
    original = getattr(model, method)
    if getattr(original, mark, False):
        return False
    signature = inspect.signature(original)

    def wrapped(cls: type, *args: Any, **kwargs: Any) -> Any:
        resource = original.__func__(cls, *args, **kwargs)
        template = signature.bind(*args, **kwargs).arguments["cloudformation_json"]
        step(resource, template)
        return resource

    setattr(wrapped, mark, True)
    wrapped.__wrapped__ = original.__func__  # type: ignore[attr-defined]  # a later wrap binds
    setattr(model, method, classmethod(wrapped))
    return True
