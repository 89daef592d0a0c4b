"""Emulator fidelity: Lambda ``PublishVersion`` publishes immutable, numbered snapshots.

On AWS a published version is a snapshot of ``$LATEST``'s code and configuration that
never changes, and ``PublishVersion``:

* numbers versions from a counter that never goes back: after version 3 is deleted the
  next one is 4, never 3 again;
* returns the last published version, publishing nothing, when ``$LATEST``'s code and
  configuration have not changed since it was published ("Lambda doesn't publish a
  version if the function's configuration and code haven't changed since the last
  version");
* refuses a ``CodeSha256`` that is not ``$LATEST``'s (``InvalidParameterValueException``
  "CodeSHA256 (...) is different from current CodeSHA256 in $LATEST (...)") and a
  ``RevisionId`` that is not ``$LATEST``'s (``PreconditionFailedException``);
* every configuration carries a ``RevisionId`` that changes whenever ``$LATEST``'s code or
  configuration changes (and when a version is published from it).

moto 5.2.5 numbers a new version ``len(versions) + 1`` (after a deletion it hands out a
number that exists: two versions "3"), decides "nothing changed" from a flag that a
first publish after an update never clears (it then publishes a duplicate), ignores
``CodeSha256`` and ``RevisionId``, answers no ``RevisionId``, and makes the version with
``copy.copy``: the version shares ``$LATEST``'s code dictionary, so after a stack update
``GetFunction(Qualifier=N)`` points at the new code's S3 key. :func:`install` replaces the
storage's ``publish_version`` with one that does what AWS does, giving the version its
own copies of the code, environment, layers and VPC configuration. Nothing else changes.

:func:`lambda_error` and :func:`name_and_qualifier` are also used by
:mod:`~tdv_airflow.local.fix_lambda_aliases` and :mod:`~tdv_airflow.local.fix_lambda_policies`.
:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

_MARK = "_tdv_publishes_snapshots"
#: Where a function group (moto's ``{"latest": ..., "versions": [...]}``) keeps the last
#: number it handed out.
LAST_NUMBER = "tdv_last_version"
#: The attribute holding a version's snapshot of ``$LATEST`` at publish time.
SOURCE = "_tdv_published_from"
#: The attribute holding a configuration's ``RevisionId``.
REVISION = "_tdv_revision_id"
#: Lambda's answer to a stale ``RevisionId`` (of a function or an alias).
STALE_REVISION = ("The Revision Id provided does not match the latest Revision Id. Call the "
                  "GetFunction/GetAlias API to retrieve the latest Revision Id")
#: Configuration keys that differ between ``$LATEST`` and a version of the same content.
_VOLATILE = frozenset({"FunctionArn", "Version", "LastModified", "LastUpdateStatus",
                       "RevisionId", "State"})


def lambda_error(kind: str, message: str, status: int) -> Exception:
    """An error moto's server answers as Lambda does (``kind`` in the body, ``status``).

    :param kind: the error code, e.g. ``"ResourceConflictException"``.
    :param message: its message.
    :param status: the HTTP status.
    """
    from moto.awslambda.exceptions import LambdaClientError

    error = LambdaClientError(kind, message)
    error.code = status
    return error


def name_and_qualifier(storage: Any, function_name: str, qualifier: str | None
                       ) -> tuple[str, str | None]:
    """The function name and the qualifier a call names, in ``function_name`` (a name,
    ``name:qualifier`` or an ARN) or in its ``Qualifier``.

    :param storage: moto's ``LambdaStorage``.
    :param function_name: what the call names.
    :param qualifier: the call's ``Qualifier``.
    """
    if function_name.startswith("arn:"):
        _, name, in_name = storage.split_function_arn(function_name)
    else:
        name, _, in_name = function_name.partition(":")
    return name, (in_name or qualifier or None)


def revision_of(function: Any) -> str:
    """A moto function's (or version's) ``RevisionId``, made on first use.

    :param function: a moto ``LambdaFunction``.
    """
    revision = getattr(function, REVISION, None)
    if revision is None:
        revision = str(uuid.uuid4())
        setattr(function, REVISION, revision)
    return str(revision)


def content(function: Any) -> str:
    """What ``$LATEST`` holds, as a comparable text: its configuration without the fields
    that name a version or a moment.

    :param function: a moto ``LambdaFunction``.
    """
    config = {k: v for k, v in function.get_configuration().items() if k not in _VOLATILE}
    return json.dumps(config, sort_keys=True, default=str)


def _own_copies(version: Any, latest: Any) -> None:
    """Give ``version`` copies of what moto's ``copy.copy`` left shared with ``latest``."""
    version.code = copy.deepcopy(latest.code)
    version.environment_vars = dict(latest.environment_vars or {})
    version.layers = copy.deepcopy(latest.layers)
    version._vpc_config = copy.deepcopy(latest._vpc_config)
    version.tracing_config = dict(latest.tracing_config)


def publish(storage: Any, name_or_arn: str, description: str = "",
            code_sha256: str | None = None, revision_id: str | None = None) -> Any:
    """``PublishVersion`` as AWS does it, on moto's ``LambdaStorage``.

    :param storage: moto's ``LambdaStorage``.
    :param name_or_arn: the function (unqualified).
    :param description: the version's description (``$LATEST``'s when empty).
    :param code_sha256: publish only if ``$LATEST``'s code has this hash.
    :param revision_id: publish only if ``$LATEST`` has this revision.
    :returns: the new version, or the last one when nothing changed since it.
    """
    from moto.awslambda.exceptions import PreconditionFailedException

    latest = storage.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
    group = storage._functions[latest.function_name]
    if revision_id and revision_id != revision_of(latest):
        raise PreconditionFailedException(STALE_REVISION)
    if code_sha256 and code_sha256 != latest.code_sha_256:
        raise lambda_error(
            "InvalidParameterValueException",
            f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
            f"({latest.code_sha_256}). Please try again with the CodeSHA256 in $LATEST.", 400)
    versions = group["versions"]
    last = max([group.get(LAST_NUMBER, 0)] + [int(v.version) for v in versions])
    now = content(latest)
    previous = next((v for v in versions if int(v.version) == last), None)
    if previous is not None and getattr(previous, SOURCE, None) == now:
        return previous
    version = copy.copy(latest)
    _own_copies(version, latest)
    version.set_version(last + 1)
    if description:
        version.description = description
    setattr(version, SOURCE, now)
    setattr(version, REVISION, str(uuid.uuid4()))
    setattr(latest, REVISION, str(uuid.uuid4()))
    group[LAST_NUMBER] = last + 1
    versions.append(version)
    storage._arns[version.function_arn] = version
    return version


def install() -> None:
    """Make versions immutable, numbered once, published only on change (idempotent)."""
    from moto.awslambda.models import LambdaBackend, LambdaFunction, LambdaStorage
    from moto.awslambda.responses import LambdaResponse

    if getattr(LambdaStorage.publish_version, _MARK, False):
        return
    moto_configuration = LambdaFunction.get_configuration
    moto_update_configuration = LambdaFunction.update_configuration
    moto_update_code = LambdaFunction.update_function_code

    def get_configuration(self: Any, on_create: bool = False) -> dict[str, Any]:
        config: dict[str, Any] = moto_configuration(self, on_create)
        config["RevisionId"] = revision_of(self)
        return config

    def update_configuration(self: Any, config_updates: dict[str, Any]) -> dict[str, Any]:
        setattr(self, REVISION, str(uuid.uuid4()))
        return dict(moto_update_configuration(self, config_updates))

    def update_function_code(self: Any, updated_spec: dict[str, Any]) -> dict[str, Any]:
        setattr(self, REVISION, str(uuid.uuid4()))
        return dict(moto_update_code(self, updated_spec))

    def backend_publish(self: Any, function_name: str, description: str = "",
                        code_sha256: str | None = None, revision_id: str | None = None
                        ) -> Any:
        return publish(self._lambdas, function_name, description, code_sha256, revision_id)

    def publish_version(self: Any) -> tuple[int, dict[str, Any], str]:
        from urllib.parse import unquote

        function_name = unquote(self.path.split("/")[-2])
        version = self.backend.publish_version(
            function_name, self._get_param("Description") or "",
            code_sha256=self._get_param("CodeSha256"),
            revision_id=self._get_param("RevisionId"))
        return 201, {"status": 201}, json.dumps(version.get_configuration())

    setattr(publish, _MARK, True)
    LambdaFunction.get_configuration = get_configuration  # type: ignore[method-assign]
    LambdaFunction.update_configuration = update_configuration  # type: ignore[method-assign]
    LambdaFunction.update_function_code = update_function_code  # type: ignore[method-assign]
    LambdaStorage.publish_version = publish  # type: ignore[assignment]
    LambdaBackend.publish_version = backend_publish  # type: ignore[method-assign]
    LambdaResponse.publish_version = publish_version  # type: ignore[method-assign,assignment]
