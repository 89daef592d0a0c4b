"""Emulator fidelity: Lambda aliases guard their revision, their routing and their
versions.

On AWS:

* an alias has a ``RevisionId`` that changes on every ``UpdateAlias``, and
  ``UpdateAlias(RevisionId=...)`` with any other value is refused with
  ``PreconditionFailedException``, so that two writers cannot overwrite each other;
* ``RoutingConfig.AdditionalVersionWeights`` names at most one published version, other
  than the alias's own, with a weight from 0.0 to 1.0, and an alias that points at
  ``$LATEST`` routes to no other version (``InvalidParameterValueException`` or
  ``ValidationException`` otherwise); ``FunctionVersion`` is ``$LATEST`` or a number;
* ``DeleteFunction(Qualifier=N)`` refuses a version an alias references, as its
  ``FunctionVersion`` or in its weights (``ResourceConflictException`` "Unable to delete
  version because the following aliases reference it: [live]"), refuses ``$LATEST``
  ("$LATEST version cannot be deleted without deleting the function.") and an alias name
  (``DeleteFunction`` deletes versions; ``DeleteAlias`` deletes aliases).

moto 5.2.5 never changes an alias's ``RevisionId`` and ignores the one it is sent (a stale
writer wins silently), takes any routing (two versions, weight 7, the alias's own
version, routing on ``$LATEST``), and deletes any version, also the one ``live`` points
at (the alias then names a version that does not exist), also ``$LATEST`` and the
version behind an alias name given as the qualifier. :func:`install` adds AWS's checks.
Nothing else changes.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from tdv_airflow.local.fix_lambda_versions import (
    STALE_REVISION,
    lambda_error,
    name_and_qualifier,
)

_MARK = "_tdv_guards_aliases"
_VERSION = re.compile(r"^[0-9]+$")
_WEIGHTS_AT = "routingConfig.additionalVersionWeights"


def _validation(value: str, where: str, constraint: str) -> Exception:
    return lambda_error("ValidationException",
                        f"1 validation error detected: Value '{value}' at '{where}' failed to "
                        f"satisfy constraint: {constraint}", 400)


def check_routing(storage: Any, function_name: str, version: str,
                  routing: dict[str, Any] | None) -> None:
    """Refuse an alias target and routing that AWS refuses.

    :param storage: moto's ``LambdaStorage``.
    :param function_name: the function.
    :param version: the alias's ``FunctionVersion`` (after the change).
    :param routing: its ``RoutingConfig`` (after the change), or ``None``.
    """
    if version != "$LATEST" and not _VERSION.match(str(version)):
        raise _validation(str(version), "functionVersion",
                          r"Member must satisfy regular expression pattern: (\$LATEST|[0-9]+)")
    weights = (routing or {}).get("AdditionalVersionWeights") or {}
    if len(weights) > 1:
        raise lambda_error("InvalidParameterValueException",
                           "Number of items in AdditionalVersionWeights cannot be greater "
                           "than 1", 400)
    for key, weight in weights.items():
        if not 0.0 <= float(weight) <= 1.0:
            raise _validation(f"{{{key}={weight}}}", _WEIGHTS_AT,
                              "Map value must satisfy constraint: [Member must have value less "
                              "than or equal to 1.0, Member must have value greater than or "
                              "equal to 0.0]")
        if not _VERSION.match(str(key)):
            raise _validation(f"{{{key}={weight}}}", _WEIGHTS_AT,
                              "Map keys must satisfy constraint: [Member must satisfy regular "
                              "expression pattern: [0-9]+]")
        if str(key) == str(version):
            raise lambda_error("InvalidParameterValueException",
                               f"Invalid function version {version}. Function version "
                               f"{version} is already included in routing configuration.", 400)
        if version == "$LATEST":
            raise lambda_error("InvalidParameterValueException",
                               "$LATEST is not supported for an alias pointing to more than 1 "
                               "version", 400)
        storage.get_function_by_name_or_arn_with_qualifier(function_name, str(key))


def referencing_aliases(storage: Any, name: str, version: str) -> list[str]:
    """The aliases of function ``name`` that route to ``version`` (sorted).

    :param storage: moto's ``LambdaStorage``.
    :param name: the function's name.
    :param version: a version number.
    """
    return sorted(alias.name for alias in storage.list_aliases(name)
                  if str(alias.function_version) == version
                  or version in ((alias.routing_config or {}).get("AdditionalVersionWeights")
                                 or {}))


def install() -> None:
    """Guard alias revisions and routing, and the versions aliases use (idempotent)."""
    from moto.awslambda.exceptions import PreconditionFailedException
    from moto.awslambda.models import LambdaStorage
    from moto.awslambda.responses import LambdaResponse

    if getattr(LambdaStorage.update_alias, _MARK, False):
        return
    moto_put = LambdaStorage.put_alias
    moto_update = LambdaStorage.update_alias
    moto_delete = LambdaStorage.del_function
    moto_respond_update = LambdaResponse.update_alias

    def put_alias(self: Any, name: str, function_name: str, function_version: str,
                  description: str, routing_config: Any) -> Any:
        check_routing(self, function_name, function_version, routing_config)
        return moto_put(self, name, function_name, function_version, description,
                        routing_config)

    def update_alias(self: Any, name: str, function_name: str, function_version: str,
                     description: str, routing_config: Any) -> Any:
        alias = self.get_alias(name, function_name)
        check_routing(self, function_name, function_version or alias.function_version,
                      alias.routing_config if routing_config is None else routing_config)
        updated = moto_update(self, name, function_name, function_version, description,
                              routing_config)
        updated.revision_id = str(uuid.uuid4())
        return updated

    def del_function(self: Any, name_or_arn: str, qualifier: str | None = None) -> None:
        name, qualifier = name_and_qualifier(self, name_or_arn, qualifier)
        if qualifier == "$LATEST":
            raise lambda_error("InvalidParameterValueException",
                               "$LATEST version cannot be deleted without deleting the "
                               "function.", 400)
        if qualifier and not _VERSION.match(qualifier):
            raise lambda_error("InvalidParameterValueException",
                               "Deletion of aliases is not supported.", 400)
        if qualifier and name in self._functions:
            users = referencing_aliases(self, name, qualifier)
            if users:
                raise lambda_error("ResourceConflictException",
                                   "Unable to delete version because the following aliases "
                                   f"reference it: [{', '.join(users)}]", 409)
        moto_delete(self, name_or_arn, qualifier)

    def respond_update_alias(self: Any) -> Any:
        from urllib.parse import unquote

        wanted = json.loads(self.body or "{}").get("RevisionId")
        if wanted:
            alias = self.backend.get_alias(name=unquote(self.path.rsplit("/", 2)[-1]),
                                           function_name=unquote(self.path.rsplit("/")[-3]))
            if wanted != alias.revision_id:
                raise PreconditionFailedException(STALE_REVISION)
        return moto_respond_update(self)

    setattr(update_alias, _MARK, True)
    LambdaStorage.put_alias = put_alias  # type: ignore[method-assign]
    LambdaStorage.update_alias = update_alias  # type: ignore[method-assign]
    LambdaStorage.del_function = del_function  # type: ignore[method-assign]
    LambdaResponse.update_alias = respond_update_alias  # type: ignore[method-assign]
