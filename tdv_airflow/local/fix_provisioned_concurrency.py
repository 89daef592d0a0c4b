"""Emulator fidelity: Lambda's provisioned concurrency API.

On AWS, ``PutProvisionedConcurrencyConfig``, ``GetProvisionedConcurrencyConfig``,
``DeleteProvisionedConcurrencyConfig`` and ``ListProvisionedConcurrencyConfigs``
(``/2019-09-30/functions/{name}/provisioned-concurrency``) keep a number of execution
environments initialised for a published version or an alias:

* the ``Qualifier`` names a version or an alias that exists (``ResourceNotFoundException``
  otherwise) and is not ``$LATEST``, nor an alias pointing at it
  (``InvalidParameterValueException``: "Provisioned Concurrency Configs cannot be
  applied to unpublished function versions.");
* ``Get`` and ``Delete`` of a qualifier without a configuration answer
  ``ProvisionedConcurrencyConfigNotFoundException`` (404);
* ``Put`` answers 202 with the requested, allocated and available counts and a status
  (``IN_PROGRESS`` until Lambda has initialised them, then ``READY``).

moto 5.2.5 has no such API: its server answers 404 to every call. :func:`install` adds
it, with the configurations held per function and qualifier; a new one is ``READY`` at
once (nothing to initialise in the emulator). Nothing else changes.

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from tdv_airflow.local.fix_lambda_versions import lambda_error

_MARK = "_tdv_provisioned_concurrency"
_PATH = (r"{0}/(?P<api_version>[^/]+)/functions/(?P<function_name>[\w_:%-]+)"
         r"/provisioned-concurrency/?$")
_UNPUBLISHED = "Provisioned Concurrency Configs cannot be applied to unpublished function versions."


def _configs(backend: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """The backend's configurations by (function name, qualifier)."""
    if not hasattr(backend, _MARK):
        setattr(backend, _MARK, {})
    configs: dict[tuple[str, str], dict[str, Any]] = getattr(backend, _MARK)
    return configs


def checked_target(backend: Any, name: str, qualifier: str | None) -> tuple[Any, str]:
    """The function version the qualifier names, refusing what AWS refuses.

    :param backend: moto's ``LambdaBackend``.
    :param name: the function's name.
    :param qualifier: a version number or an alias name.
    :returns: moto's function (that version) and the qualifier.
    """
    if not qualifier or qualifier == "$LATEST":
        raise lambda_error("InvalidParameterValueException", _UNPUBLISHED, 400)
    function = backend.get_function(name, qualifier)  # ResourceNotFoundException
    if not re.fullmatch(r"[0-9]+", qualifier):
        version = str(backend.get_alias(qualifier, name).function_version)
        if version == "$LATEST":
            raise lambda_error("InvalidParameterValueException", _UNPUBLISHED, 400)
    return function, qualifier


def _not_found() -> Exception:
    return lambda_error("ProvisionedConcurrencyConfigNotFoundException",
                        "No Provisioned Concurrency Config found for this function", 404)


def install() -> None:
    """Add the provisioned concurrency API to moto's Lambda (idempotent)."""
    from moto.awslambda import urls
    from moto.awslambda.responses import LambdaResponse

    if getattr(LambdaResponse, _MARK, False):
        return

    def target(self: Any) -> tuple[str, str | None]:
        name = unquote(self.path.split("/functions/", 1)[1].split("/", 1)[0])
        return name.split(":", 1)[0], self.querystring.get("Qualifier", [None])[0]

    def put(self: Any) -> Any:
        name, qualifier = target(self)
        _, qualifier = checked_target(self.backend, name, qualifier)
        wanted = int(json.loads(self.body or "{}").get("ProvisionedConcurrentExecutions", 0))
        config = {"RequestedProvisionedConcurrentExecutions": wanted,
                  "AvailableProvisionedConcurrentExecutions": wanted,
                  "AllocatedProvisionedConcurrentExecutions": wanted, "Status": "READY",
                  "LastModified": datetime.now(UTC).isoformat(timespec="seconds")}
        _configs(self.backend)[(name, qualifier)] = config
        return 202, {"status": 202}, json.dumps(config)

    def get(self: Any) -> Any:
        if "List" in self.querystring:
            return listed(self)
        name, qualifier = target(self)
        checked_target(self.backend, name, qualifier)
        config = _configs(self.backend).get((name, str(qualifier)))
        if config is None:
            raise _not_found()
        return 200, {}, json.dumps(config)

    def delete(self: Any) -> Any:
        name, qualifier = target(self)
        checked_target(self.backend, name, qualifier)
        if _configs(self.backend).pop((name, str(qualifier)), None) is None:
            raise _not_found()
        return 204, {"status": 204}, ""

    def listed(self: Any) -> Any:
        name, _ = target(self)
        arn = self.backend.get_function(name).function_arn
        found = [{"FunctionArn": f"{arn}:{qualifier}", **config}
                 for (function, qualifier), config in sorted(_configs(self.backend).items())
                 if function == name]
        return 200, {}, json.dumps({"ProvisionedConcurrencyConfigs": found})

    LambdaResponse.put_provisioned_concurrency_config = put  # type: ignore[attr-defined]
    LambdaResponse.get_provisioned_concurrency_config = get  # type: ignore[attr-defined]
    LambdaResponse.delete_provisioned_concurrency_config = delete  # type: ignore[attr-defined]
    LambdaResponse.list_provisioned_concurrency_configs = listed  # type: ignore[attr-defined]
    urls.url_paths[_PATH] = LambdaResponse.dispatch
    setattr(LambdaResponse, _MARK, True)
