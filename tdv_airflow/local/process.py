"""Running a deployed stack's function locally, routed between its versions as the
stack's API routes requests.

:class:`LocalFunction` reads what a request to the stack reaches
(:func:`tdv_airflow.local.alias_route.stack_route`): the ``live`` alias of a stack with a
``LiveAlias`` output, chosen per request between the alias's version and its additional
version by their weights; ``$LATEST`` for a stack without one (older templates); or the
version or alias the caller names (``qualifier``). Each version runs in its own warm
process (:class:`tdv_airflow.local.container.FunctionProcess`), laid out side by side in
the layout cache (by digest). A stack whose alias does not exist yet answers as API
Gateway does when Lambda refuses the invocation: ``500 {"message": "Internal server
error"}``. :func:`invoke_deployed` runs one request::

    invoke_deployed(clients, "iris", {"features": [[5.1, 3.5, 1.4, 0.2]]})
    # {"statusCode": 200, "headers": {...}, "body": "{\"predictions\": [0]}", ...}

The function runs with the caller's credentials, not the function's role: a missing
IAM permission of the role does not show locally.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tdv_airflow.core.clients import AwsClients
from tdv_airflow.exceptions import LocalRunError
from tdv_airflow.local.alias_route import Route, refreshed, stack_route
from tdv_airflow.local.container import FunctionProcess, Invocation, function_environ
from tdv_airflow.local.events import gateway_error, request_event
from tdv_airflow.local.find import DeployedFunction, check_qualifier, described, find_function
from tdv_airflow.local.layout import Layout, default_workdir

__all__ = ["Invocation", "LocalFunction", "function_environ", "invoke_deployed", "invoke_once"]

log = logging.getLogger(__name__)


class LocalFunction:
    """A deployed stack's function running locally, as its API invokes it.

    ::

        with LocalFunction(clients, "iris") as fn:
            fn.invoke({"features": [[5.1, 3.5, 1.4, 0.2]]})     # cold
            fn.invoke({"features": [[6.2, 2.9, 4.3, 1.3]]})     # warm

    :param clients: boto3 clients of the stack's account and region.
    :param stack_name: the stack.
    :param qualifier: a version number, ``$LATEST`` or an alias to run instead of what
        the stack's API invokes.
    :param rng: the random source choosing a weighted alias's version per request: a
        callable returning a number in ``[0, 1)`` (default :func:`random.random`).
    :param route_ttl: seconds an alias's weights, once read, are used before being read
        again (``0``: one ``GetAlias`` per request).
    :param workdir: the layout cache (default :func:`default_workdir`).
    :param python: each version's interpreter, ``invoke_timeout`` and ``init_timeout``:
        see :class:`~tdv_airflow.local.container.FunctionProcess`.
    :param invoke_timeout: seconds an invocation may take.
    :param init_timeout: seconds the handler's module may take to import.
    :raises InvalidInputError: when ``qualifier`` is not a version, ``$LATEST`` or alias.
    """

    def __init__(self, clients: AwsClients, stack_name: str, *, qualifier: str | None = None,
                 rng: Callable[[], float] | None = None, route_ttl: float = 1.0,
                 workdir: str | Path | None = None, python: str | None = None,
                 invoke_timeout: float | None = None, init_timeout: float = 60.0) -> None:
        self.clients = clients
        self.stack_name = stack_name
        self.qualifier = check_qualifier(qualifier) if qualifier is not None else None
        self.rng = rng or random.random
        self.route_ttl = route_ttl
        self.workdir = Path(workdir) if workdir else default_workdir()
        self._options: dict[str, Any] = {"python": python, "invoke_timeout": invoke_timeout,
                                         "init_timeout": init_timeout}
        self.route: Route | None = None
        self._read_at = 0.0
        self._processes: dict[str, FunctionProcess] = {}
        self._api: DeployedFunction | None = None
        self._last: FunctionProcess | None = None
        self._lock = threading.Lock()

    # -- routing
    def current_route(self, *, refresh: bool = False) -> Route:
        """What a request reaches now (an alias's weights are read again after
        ``route_ttl`` seconds, or when ``refresh``).

        :param refresh: read the alias now.
        :raises StackNotFoundError: when the stack does not exist.
        """
        with self._lock:
            now = time.monotonic()
            if self.route is None:
                self.route = stack_route(self.clients, described(self.clients,
                                                                 self.stack_name),
                                         self.qualifier)
            elif self.route.is_alias and (refresh or now - self._read_at >= self.route_ttl):
                self.route = refreshed(self.clients, self.route)
            else:
                return self.route
            self._read_at = now
            route = self.route
            stale = [self._processes.pop(v) for v in set(self._processes) - set(route.versions)]
        for process in stale:  # versions that no longer take traffic
            process.close()
        return route

    def process_for(self, version: str) -> FunctionProcess:
        """The warm process of one version of the route (created when first needed).

        :param version: a version the route reaches.
        """
        route = self.current_route()
        with self._lock:
            process = self._processes.get(version)
            if process is None:
                # A stack routed to $LATEST runs it exactly as the stack deploys it.
                by_stack = not route.is_alias and self.qualifier is None
                process = FunctionProcess(
                    self.clients, self.stack_name, qualifier=None if by_stack else version,
                    invoked_as=route.qualifier if route.is_alias else None,
                    workdir=self.workdir, **self._options)
                self._processes[version] = process
            return process

    def _primary(self) -> FunctionProcess | None:
        route = self.current_route()
        return self.process_for(route.versions[0]) if route.versions else None

    # -- lifecycle
    def prepare(self) -> Layout:
        """Find the first version of the route (an alias's own version) and lay it out (no
        process is started).

        :raises LocalRunError: when no version answers (the alias does not exist yet).
        """
        primary = self._primary()
        if primary is None:
            raise LocalRunError(str(self.current_route().reason))
        return primary.prepare()

    def start(self) -> LocalFunction:
        """Start the process of the alias's own version (a cold start); other versions
        start on their first request. A stack without a live version starts nothing: its
        requests get API Gateway's 500.

        :raises LocalRunError: when the process does not start.
        """
        primary = self._primary()
        if primary is not None:
            primary.start()
        else:
            self._context()
        return self

    def close(self) -> None:
        """Stop every version's process."""
        with self._lock:
            processes, self._processes = list(self._processes.values()), {}
        for process in processes:
            process.close()

    def __enter__(self) -> LocalFunction:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _context(self) -> DeployedFunction:
        """The first version of the route (an alias's own), found; ``$LATEST`` when the
        route has none (the stack's API is the same, for events)."""
        primary = self._primary()
        if primary is not None:
            return primary.find()
        if self._api is None:
            self._api = find_function(self.clients, self.stack_name)
        return self._api

    @property
    def function(self) -> DeployedFunction | None:
        """The first version of the route (an alias's own), as found (``$LATEST``
        without a live version); ``None`` before :meth:`start`/:meth:`prepare`."""
        if self.route is not None and self.route.versions:
            primary = self._processes.get(self.route.versions[0])
            return primary.function if primary is not None else None
        return self._api

    @property
    def layout(self) -> Layout | None:
        """The layout of the first version of the route (an alias's own), once prepared."""
        if self.route is None or not self.route.versions:
            return None
        primary = self._processes.get(self.route.versions[0])
        return primary.layout if primary is not None else None

    @property
    def pid(self) -> int | None:
        """The process id of the version that answered last (else the alias's own), if
        it runs."""
        process = self._last or (self._processes.get(self.route.versions[0])
                                 if self.route is not None and self.route.versions else None)
        return process.pid if process is not None else None

    # -- invocations
    def invoke_event(self, event: Mapping[str, Any]) -> Invocation:
        """Run one event through the version the route chooses for it.

        :param event: the Lambda event.
        :returns: the outcome and the version that answered; API Gateway's 502 for a
            failing function, its 500 when no version exists to answer.
        """
        route = self.current_route()
        version = route.choose(self.rng())
        if version is None:
            log.error("%s", route.reason)
            return Invocation(gateway_error(500), 0.0, error={
                "errorType": "ResourceNotFoundException", "errorMessage": route.reason})
        process = self.process_for(version)
        self._last = process
        result = process.invoke_event(event)
        log.info("%s: version %s answered %s", route.function_name, result.version,
                 result.response.get("statusCode"))
        return result

    def event_for(self, payload: Any, *, method: str = "POST",
                  headers: Mapping[str, str] | None = None, path: str = "/predict",
                  query: Mapping[str, str | Sequence[str]] | None = None) -> dict[str, Any]:
        """The API Gateway event of a request to this stack's API.

        :param payload: the request payload (see :func:`~tdv_airflow.local.events.payload_body`).
        :param method: the HTTP method.
        :param headers: request headers (``Content-Type: application/json`` by default).
        :param path: the request path without the stage.
        :param query: query string parameters.
        """
        return request_event(self._context(), payload, method=method, headers=headers, path=path,
                             query=query)

    def invoke(self, payload: Any, *, method: str = "POST",
               headers: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Send one request through the function, as API Gateway would.

        :param payload: the request payload (see :func:`~tdv_airflow.local.events.payload_body`).
        :param method: the HTTP method.
        :param headers: request headers.
        :returns: the proxy response (``statusCode``, ``headers``, ``body``).
        """
        return self.invoke_event(self.event_for(payload, method=method,
                                                headers=headers)).response


def invoke_once(clients: AwsClients, stack_name: str, payload: Any, *, method: str = "POST",
                headers: Mapping[str, str] | None = None, workdir: Path | None = None,
                qualifier: str | None = None,
                rng: Callable[[], float] | None = None) -> Invocation:
    """Run one API Gateway request through a deployed stack's function, locally.

    :param clients: boto3 clients of the stack's account and region (an emulator's too).
    :param stack_name: the stack.
    :param payload: the request payload: ``str``/``bytes`` are sent verbatim, anything
        else as JSON.
    :param method: the HTTP method.
    :param headers: request headers.
    :param workdir: the layout cache (default :func:`default_workdir`).
    :param qualifier: the version or alias to run instead of what the stack's API invokes.
    :param rng: the random source choosing a weighted alias's version.
    :returns: the outcome, with the version that answered.
    """
    with LocalFunction(clients, stack_name, qualifier=qualifier, rng=rng,
                       workdir=workdir) as function:
        return function.invoke_event(function.event_for(payload, method=method,
                                                        headers=headers))


def invoke_deployed(clients: AwsClients, stack_name: str, payload: Any, *,
                    method: str = "POST", headers: dict[str, str] | None = None,
                    workdir: Path | None = None, qualifier: str | None = None,
                    rng: Callable[[], float] | None = None) -> dict[str, Any]:
    """Run a deployed stack's function once, locally, on one API Gateway request, and
    return only what API Gateway would answer (:func:`invoke_once` tells the version too).

    The code and layers are fetched from where they are deployed (cached by digest in
    ``workdir``) and run in a fresh Python process; see the module documentation.

    :param clients: the stack's clients.
    :param stack_name: the stack.
    :param payload: the body (``str``/``bytes`` verbatim, else JSON).
    :param method: the method.
    :param headers: the headers.
    :param workdir: the layout cache.
    :param qualifier: a version or alias to run instead of the API's.
    :param rng: chooses between a weighted alias's versions.
    :returns: the proxy response dict (``statusCode``, ``headers``, ``body``), or API
        Gateway's 502 when the function fails (500 when the stack has no live version).
    """
    return invoke_once(clients, stack_name, payload, method=method, headers=headers,
                       workdir=workdir, qualifier=qualifier, rng=rng).response
