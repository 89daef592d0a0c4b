"""A local stand-in for the deployed API: HTTP requests in, the deployed function's
answers out (see :mod:`tdv_airflow.local.process`).

Routing follows the stack's front door (its ``FrontDoor`` output): a REST API lets only
``POST /predict`` (also ``POST /{stage}/predict``, as in the real URL) reach the
function, any other path or method gets its ``403 {"message": "Missing Authentication
Token"}``; an HTTP API only ``POST /predict`` (its ``$default`` stage has no stage
segment), anything else gets its ``404 {"message": "Not Found"}``; a function URL passes
every method and path (``/`` as well as ``/predict``) to the function. The event is the
door's: payload 1.0 for the REST API, 2.0 for the HTTP API and the function URL
(:func:`~tdv_airflow.local.events.function_event`). Each
request reaches the version the stack's API would invoke (its ``live`` alias, by the
alias's weights, else ``$LATEST``; see :class:`~tdv_airflow.local.process.LocalFunction`);
one process per version serves its requests in turn, so after its first (cold) request
the model stays loaded. A stack whose alias does not exist yet answers API Gateway's
``500 {"message": "Internal server error"}``.

Requests are authenticated as the deployed API would: the mode the stack was deployed
with (its ``EndpointAuth``) is enforced by an
:class:`~tdv_airflow.endpoint.verify.EndpointAuthenticator` (``API_KEY``: the stack's key
in ``x-api-key``; ``AWS_IAM``: a well-formed SigV4 signature for ``execute-api``, or
``lambda`` for a function URL, verified
when the signer's credentials are the server's own; ``NONE``: open). A refused request
gets API Gateway's 403 and never reaches the function.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tdv_airflow.endpoint.verify import EndpointAuthenticator
from tdv_airflow.local.events import function_event
from tdv_airflow.local.find import DeployedFunction
from tdv_airflow.local.process import LocalFunction

log = logging.getLogger(__name__)

#: API Gateway REST APIs refuse larger request bodies.
MAX_REQUEST_BYTES = 10 * 1024 * 1024
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def _make_handler(function: LocalFunction, authenticator: EndpointAuthenticator | None = None
                  ) -> type[BaseHTTPRequestHandler]:
    if function.function is None:
        raise ValueError("start the function before serving it")
    fn: DeployedFunction = function.function
    routes = {"/predict", f"/{fn.stage_name}/predict"} if fn.front_door == "rest" \
        else {"/predict"}

    class Handler(BaseHTTPRequestHandler):
        """Turns one HTTP request into an API Gateway event and back."""

        server_version = "tdv-local-run"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.info("%s - %s", self.address_string(), format % args)

        def _send(self, status: int, headers: dict[str, list[str]], body: bytes) -> None:
            self.send_response(status)
            names = {k.lower() for k in headers}
            for name, values in headers.items():
                for value in values:
                    self.send_header(name, value)
            if "content-type" not in names:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _gateway(self, status: int, message: str, error_type: str | None = None) -> None:
            self._send(status, {"x-amzn-ErrorType": [error_type or "ForbiddenException"]
                                if status == 403 else []},
                       json.dumps({"message": message}).encode())

        def _handle(self) -> None:
            split = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_REQUEST_BYTES:
                self.close_connection = True
                self._gateway(413, "Request Too Long")
                return
            body = self.rfile.read(length) if length else None
            if fn.front_door != "url" and (split.path not in routes
                                           or self.command != "POST"):
                if fn.front_door == "http":
                    self._gateway(404, "Not Found")
                else:
                    self._gateway(403, "Missing Authentication Token")
                return
            headers: dict[str, list[str]] = {}
            for name, value in self.headers.items():
                headers.setdefault(name, []).append(value)
            if authenticator is not None:
                refusal = authenticator.check(
                    self.command, f"http://{self.headers.get('Host', '')}{self.path}",
                    headers, body)
                if refusal is not None:
                    self._gateway(refusal.status, refusal.message, refusal.error_type)
                    return
            query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
            event = function_event(fn, body, method=self.command,
                                   path="/predict" if fn.front_door == "rest" else split.path,
                                   headers=headers, query=query,
                                   source_ip=self.client_address[0])
            result = function.invoke_event(event)
            response = result.response
            out_headers: dict[str, list[str]] = {}
            for name, value in (response.get("headers") or {}).items():
                out_headers[name] = [str(value)]
            for name, values in (response.get("multiValueHeaders") or {}).items():
                out_headers.setdefault(name, []).extend(str(v) for v in values)
            out_headers["x-amzn-RequestId"] = [event["requestContext"]["requestId"]]
            raw = response.get("body") or ""
            data = (base64.b64decode(raw) if response.get("isBase64Encoded")
                    else raw.encode("utf-8"))
            self._send(int(response["statusCode"]), out_headers, data)

    for method in _METHODS:
        setattr(Handler, f"do_{method}", Handler._handle)
    return Handler


def make_server(function: LocalFunction, host: str = "127.0.0.1", port: int = 8080,
                auth: EndpointAuthenticator | None = None) -> ThreadingHTTPServer:
    """An HTTP server answering through ``function`` (started, not yet serving).

    The function process is started at once (its cold start then happens before the
    first request is accepted, except the lazy artifact load of the handler).

    :param function: the local function.
    :param host: the address to bind (loopback by default).
    :param port: the port (0 picks a free one: read ``server.server_address``).
    :param auth: how requests are authenticated; ``None`` (default) enforces the mode the
        stack was deployed with (:meth:`EndpointAuthenticator.for_stack`).
    :raises EndpointAuthError: when an ``API_KEY`` stack's key cannot be read.
    """
    if auth is None:
        auth = EndpointAuthenticator.for_stack(function.clients, function.stack_name)
    function.start()
    log.info("stack %s: requests are authenticated as EndpointAuth %s (front door %s)",
             function.stack_name, auth.mode,
             function.function.front_door if function.function else "?")
    server = ThreadingHTTPServer((host, port), _make_handler(function, auth))
    server.daemon_threads = True
    return server


def serve(function: LocalFunction, host: str = "127.0.0.1", port: int = 8080,
          ready: Callable[[str], None] | None = None,
          auth: EndpointAuthenticator | None = None) -> None:
    """Serve until interrupted, then stop the function's process.

    :param function: the local function.
    :param host: the address to bind.
    :param port: the port.
    :param ready: called with the ``/predict`` URL once listening (default: print it).
    :param auth: how requests are authenticated (default: as the stack was deployed).
    """
    server = make_server(function, host, port, auth)
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host!s}:{bound_port}/predict"
    name = function.function.function_name if function.function else "?"
    route = function.route
    target = f"{name}:{route.qualifier}" if route is not None else name
    (ready or (lambda u: print(f"serving stack {function.stack_name!r} (function "
                               f"{target}) on {u}", flush=True)))(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        function.close()


def serve_in_thread(function: LocalFunction, host: str = "127.0.0.1", port: int = 0,
                    auth: EndpointAuthenticator | None = None
                    ) -> tuple[ThreadingHTTPServer, threading.Thread]:
    """Start serving in a background thread (for tests and notebooks).

    Stop with ``server.shutdown(); server.server_close(); function.close()``.

    :param function: the local function.
    :param host: the address to bind.
    :param port: the port (0 picks a free one).
    :param auth: how requests are authenticated (default: as the stack was deployed).
    """
    server = make_server(function, host, port, auth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread
