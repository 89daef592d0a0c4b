"""Emulator fidelity: a Lambda function URL belongs to an alias (``Qualifier``).

On AWS, ``CreateFunctionUrlConfig(FunctionName, Qualifier="live")`` creates the URL of the
alias ``live``: its ``FunctionArn`` is the alias's ARN (``...:function:NAME:live``), it
invokes whatever version the alias routes to, and ``GetFunctionUrlConfig``,
``UpdateFunctionUrlConfig`` and ``DeleteFunctionUrlConfig`` with the same ``Qualifier``
read, change and delete it; the unqualified URL (``$LATEST``) is another one. Creating a
URL that exists is refused with ``ResourceConflictException``; reading one that does not
exist is ``ResourceNotFoundException``. A qualifier must be an alias (or ``$LATEST``),
never a version number, and the alias must exist.

moto 5.2.5 ignores ``Qualifier`` in all four calls: the URL is the function's, its
``FunctionArn`` unqualified, so a URL "on the alias" cannot be told from one on
``$LATEST``, and a second create silently replaces the first. :func:`install` keeps one
URL per ``(function, qualifier)`` with the checks above. Nothing else changes (the
emulator routes no request to a URL: the local runner builds the payload 2.0 event).

:mod:`tdv_airflow.local.moto_server` calls :func:`install` before the server starts.
Without moto the module is not importable (the ``local`` extra).
"""

from __future__ import annotations

import json
import re
from typing import Any

from tdv_airflow.local.fix_lambda_versions import lambda_error

_MARK = "_tdv_url_per_qualifier"
#: The attribute of moto's ``LambdaBackend`` holding ``{(function, qualifier): config}``.
URLS = "_tdv_function_urls"
#: What AWS accepts as a function URL's qualifier: an alias name or ``$LATEST``.
QUALIFIER_RE = re.compile(r"^(\$LATEST|(?![0-9]+$)[a-zA-Z0-9_-]{1,128})$")


def _urls(backend: Any) -> dict[tuple[str, str | None], Any]:
    store: dict[tuple[str, str | None], Any] | None = getattr(backend, URLS, None)
    if store is None:
        store = {}
        setattr(backend, URLS, store)
    return store


def _target(backend: Any, function_name: str, qualifier: str | None) -> tuple[Any, str | None]:
    """The function and the checked qualifier (``None`` for the unqualified URL)."""
    from tdv_airflow.local.fix_lambda_versions import name_and_qualifier

    storage = backend._lambdas
    name, qualifier = name_and_qualifier(storage, function_name, qualifier)
    latest = storage.get_function_by_name_or_arn_forbid_qualifier(name)
    if qualifier in (None, "$LATEST"):
        return latest, None
    if not QUALIFIER_RE.match(qualifier):
        raise lambda_error("ValidationException", f"1 validation error detected: Value "
                           f"'{qualifier}' at 'qualifier' failed to satisfy constraint: "
                           "Member must satisfy regular expression pattern: "
                           "((?!^\\d+$)^[0-9a-zA-Z-_]+$)", 400)
    if qualifier not in storage._aliases.get(latest.function_arn, {}):
        raise lambda_error("ResourceNotFoundException",
                           f"Function not found: {latest.function_arn}:{qualifier}", 404)
    return latest, qualifier


def _wire(config: Any, qualifier: str | None) -> str:
    shown = dict(config.to_dict())
    if qualifier is not None:
        shown["FunctionArn"] = f"{config.function.function_arn}:{qualifier}"
    return json.dumps(shown)


def install() -> None:
    """Keep a function URL per qualifier (idempotent)."""
    from urllib.parse import unquote

    from moto.awslambda.models import FunctionUrlConfig
    from moto.awslambda.responses import LambdaResponse

    if getattr(LambdaResponse.create_function_url_config, _MARK, False):
        return

    def call(self: Any) -> tuple[Any, str | None, dict[tuple[str, str | None], Any]]:
        name = unquote(self.path.split("/")[-2])
        latest, qualifier = _target(self.backend, name, self.querystring.get(
            "Qualifier", [None])[0])
        return latest, qualifier, _urls(self.backend)

    def missing(latest: Any, qualifier: str | None) -> Exception:
        arn = latest.function_arn + (f":{qualifier}" if qualifier else "")
        return lambda_error("ResourceNotFoundException",
                            f"The resource you requested does not exist. ({arn})", 404)

    def create(self: Any) -> tuple[int, dict[str, Any], str]:
        latest, qualifier, store = call(self)
        key = (latest.function_name, qualifier)
        if key in store:
            raise lambda_error("ResourceConflictException", "Failed to create function url "
                               f"config for [functionArn = {latest.function_arn}]. Error "
                               "message:  FunctionUrlConfig exists for this Lambda "
                               "function", 409)
        store[key] = FunctionUrlConfig(function=latest, config=dict(self.json_body))
        return 201, {"status": 201}, _wire(store[key], qualifier)

    def get(self: Any) -> tuple[int, dict[str, Any], str]:
        latest, qualifier, store = call(self)
        config = store.get((latest.function_name, qualifier))
        if config is None:
            raise missing(latest, qualifier)
        return 200, {"status": 200}, _wire(config, qualifier)

    def update(self: Any) -> tuple[int, dict[str, Any], str]:
        latest, qualifier, store = call(self)
        config = store.get((latest.function_name, qualifier))
        if config is None:
            raise missing(latest, qualifier)
        config.update(dict(self.json_body))
        return 200, {"status": 200}, _wire(config, qualifier)

    def delete(self: Any) -> tuple[int, dict[str, Any], str]:
        latest, qualifier, store = call(self)
        if store.pop((latest.function_name, qualifier), None) is None:
            raise missing(latest, qualifier)
        return 204, {"status": 204}, "{}"

    setattr(create, _MARK, True)
    LambdaResponse.create_function_url_config = create  # type: ignore[method-assign,assignment]
    LambdaResponse.get_function_url_config = get  # type: ignore[method-assign,assignment]
    LambdaResponse.update_function_url_config = update  # type: ignore[method-assign,assignment]
    LambdaResponse.delete_function_url_config = delete  # type: ignore[method-assign,assignment]
