"""Emulator fidelity: a Lambda version or alias has its own resource-based policy.

On AWS, ``AddPermission(Qualifier="live")`` adds a statement to the policy of the alias
``live`` only: ``GetPolicy(Qualifier="live")`` shows it, ``GetPolicy`` without a qualifier
(the function's, ``$LATEST``'s, policy) and ``GetPolicy(Qualifier="3")`` do not, and
``RemovePermission(Qualifier="live")`` removes it. A statement id is unique within a
policy: adding one that exists is refused with ``ResourceConflictException`` ("The
statement id (...) provided already exists. Please provide a new statement id, or remove
the existing statement."), which is what makes a retried ``AddPermission`` safe. Deleting
the alias, the version or the function deletes its policy.

moto 5.2.5 keeps one policy object shared by ``$LATEST`` and every version (``copy.copy``)
and resolves an alias to its version, so a statement added for ``live`` shows in every
qualifier's policy and the unqualified one, ``RemovePermission`` ignores ``Qualifier``,
and a duplicate statement id is appended. :func:`install` keeps one policy per qualified
version or alias, refuses a duplicate id in any policy, and drops the policies of what is
deleted. The unqualified policy (also the one ``AWS::Lambda::Permission`` writes) stays
moto's. Nothing else changes.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import json
from typing import Any

from tdv_airflow.local.fix_lambda_versions import lambda_error, name_and_qualifier

_MARK = "_tdv_policy_per_qualifier"
#: The attribute of moto's ``LambdaBackend`` holding ``{(function, qualifier): Policy}``.
POLICIES = "_tdv_qualified_policies"


def _policies(backend: Any) -> dict[tuple[str, str], Any]:
    store: dict[tuple[str, str], Any] | None = getattr(backend, POLICIES, None)
    if store is None:
        store = {}
        setattr(backend, POLICIES, store)
    return store


def target(backend: Any, function_name: str, qualifier: str | None
           ) -> tuple[Any, str | None]:
    """The latest function and the version or alias a call names (``None``: unqualified).

    :param backend: moto's ``LambdaBackend``.
    :param function_name: a name, ``name:qualifier`` or an ARN.
    :param qualifier: the call's ``Qualifier``.
    :raises: moto's not-found error when the function, version or alias does not exist.
    """
    storage = backend._lambdas
    name, qualifier = name_and_qualifier(storage, function_name, qualifier)
    latest = storage.get_function_by_name_or_arn_forbid_qualifier(name)
    if qualifier in (None, "$LATEST"):
        return latest, None
    storage.get_function_by_name_or_arn_with_qualifier(name, qualifier)
    return latest, str(qualifier)


def policy_of(backend: Any, latest: Any, qualifier: str | None, create: bool) -> Any:
    """The policy of ``latest`` (unqualified) or of its version or alias ``qualifier``.

    :param backend: moto's ``LambdaBackend``.
    :param latest: the function's ``$LATEST``.
    :param qualifier: a version or alias, or ``None``.
    :param create: make an empty policy when there is none yet.
    """
    from moto.awslambda.policy import Policy

    if qualifier is None:
        return latest.policy
    store = _policies(backend)
    key = (latest.function_name, qualifier)
    if key not in store and create:
        store[key] = Policy(latest)
    return store.get(key)


def install() -> None:
    """Give versions and aliases their own policies (idempotent)."""
    from moto.awslambda.exceptions import GenericResourcNotFound
    from moto.awslambda.models import LambdaBackend
    from moto.awslambda.responses import LambdaResponse

    if getattr(LambdaBackend.add_permission, _MARK, False):
        return
    moto_delete_alias = LambdaBackend.delete_alias
    moto_delete_function = LambdaBackend.delete_function

    def add_permission(self: Any, function_name: str, qualifier: str | None, raw: str
                       ) -> dict[str, Any]:
        latest, qualifier = target(self, function_name, qualifier)
        policy = policy_of(self, latest, qualifier, create=True)
        sid = json.loads(raw).get("StatementId")
        if sid and any(s.get("Sid") == sid for s in policy.statements):
            raise lambda_error("ResourceConflictException",
                               f"The statement id ({sid}) provided already exists. Please "
                               "provide a new statement id, or remove the existing "
                               "statement.", 409)
        statement, _ = policy.add_statement(raw, qualifier)
        return dict(statement)

    def get_policy(self: Any, function_name: str, qualifier: str | None = None) -> str:
        latest, qualifier = target(self, function_name, qualifier)
        policy = policy_of(self, latest, qualifier, create=False)
        if policy is None:
            raise GenericResourcNotFound()
        return str(policy.wire_format())

    def remove_permission(self: Any, function_name: str, sid: str, revision: str = "",
                          qualifier: str | None = None) -> None:
        latest, qualifier = target(self, function_name, qualifier)
        policy = policy_of(self, latest, qualifier, create=True)
        policy.del_statement(sid, revision)

    def delete_alias(self: Any, name: str, function_name: str) -> None:
        moto_delete_alias(self, name, function_name)
        _policies(self).pop((function_name.split(":")[-1], name), None)

    def delete_function(self: Any, function_name: str, qualifier: str | None = None) -> None:
        name, named = name_and_qualifier(self._lambdas, function_name, qualifier)
        moto_delete_function(self, function_name, qualifier)
        store = _policies(self)
        for key in [k for k in store if k[0] == name and named in (None, k[1])]:
            del store[key]

    def respond_remove_permission(self: Any) -> tuple[int, dict[str, Any], str]:
        from urllib.parse import unquote

        function_name = unquote(self.path.split("/")[-3])
        statement_id = self.path.split("/")[-1].split("?")[0]
        self.backend.remove_permission(
            function_name, statement_id, self.querystring.get("RevisionId", [""])[0],
            qualifier=self.querystring.get("Qualifier", [None])[0])
        return 204, {"status": 204}, "{}"

    setattr(add_permission, _MARK, True)
    LambdaBackend.add_permission = add_permission  # type: ignore[method-assign]
    LambdaBackend.get_policy = get_policy  # type: ignore[method-assign]
    LambdaBackend.remove_permission = remove_permission  # type: ignore[method-assign]
    LambdaBackend.delete_alias = delete_alias  # type: ignore[method-assign]
    LambdaBackend.delete_function = delete_function  # type: ignore[method-assign]
    LambdaResponse.remove_permission = respond_remove_permission  # type: ignore[method-assign]
