"""A small fault-injecting HTTP proxy in front of the embedded AWS.

Toxiproxy is not among Debian's packages, and the faults the fault suite needs are
AWS-shaped rather than TCP-shaped, so the tests put this proxy between Airflow's tasks
and the emulator. Every request is forwarded as it came (same method, path, headers and
body: SigV4 signatures stay valid) and recorded as a :class:`Call`, named by service and
action the way AWS names them, with botocore's attempt counter (``amz-sdk-request``).

Three kinds of fault, each switched on and off by the test:

* :meth:`FaultProxy.throttle`: a share of the calls (chosen by a seeded random draw)
  gets the error AWS answers when it throttles: ``Throttling`` (HTTP 400) for
  CloudFormation, ``SlowDown`` (503) for S3, ``TooManyRequestsException`` (429) for
  Lambda and API Gateway, a bare 503 for anything else.
* :meth:`FaultProxy.outage`: every connection is closed before any answer, as when the
  endpoint is down, until the outage is ended.
* :meth:`FaultProxy.on`: a callback runs when a matching call arrives (``before``) or
  once its answer is back from the emulator (``after``); the fault suite kills a worker
  there, at an exact point of a deployment.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

#: Headers that belong to one hop and are not forwarded.
HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
               "trailer", "upgrade", "expect"}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_ATTEMPT = re.compile(r"attempt=(\d+)(?:;\s*max=(\d+))?")


@dataclass
class Call:
    """One HTTP request an AWS client sent (one botocore attempt).

    :param service: the signing name (``s3``, ``cloudformation``, ``lambda`` ...).
    :param action: the API action (``CreateStack``, ``UploadPart`` ...), or
        ``"METHOD /path"`` for a REST call this module does not name.
    :param method: the HTTP method.
    :param path: the path and query.
    :param attempt: botocore's attempt number (1 for the first try).
    :param max_attempts: the attempts botocore allows the call (0 when unknown).
    :param invocation: botocore's id of the call, the same for all its attempts.
    :param at: when it arrived (``time.monotonic()``).
    :param status: the HTTP status answered (``None``: the connection was closed).
    :param fault: the fault injected, if any.
    :param params: a query-protocol call's parameters (first values), e.g. ``StackName``.
    """

    service: str
    action: str
    method: str
    path: str
    attempt: int
    max_attempts: int
    invocation: str
    at: float
    status: int | None = None
    fault: str | None = None
    params: dict[str, str] = field(default_factory=dict)


@dataclass
class Hook:
    """A callback on matching calls (see :meth:`FaultProxy.on`)."""

    match: Callable[[Call], bool]
    action: Callable[[Call], None]
    when: str
    once: bool
    fired: list[Call] = field(default_factory=list)


def _s3_action(method: str, query: dict[str, list[str]], path: str) -> str:
    if "uploadId" in query:
        return {"PUT": "UploadPart", "POST": "CompleteMultipartUpload",
                "DELETE": "AbortMultipartUpload", "GET": "ListParts"}.get(method, method)
    if "uploads" in query:
        return "CreateMultipartUpload" if method == "POST" else "ListMultipartUploads"
    has_key = path.strip("/").count("/") >= 1
    if not has_key:
        return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "GET": "ListObjects"}.get(
            method, f"{method} bucket")
    return {"PUT": "PutObject", "GET": "GetObject", "HEAD": "HeadObject",
            "DELETE": "DeleteObject"}.get(method, method)


def describe(method: str, target: str, headers: Any, body: bytes) -> Call:
    """Name a request as AWS would.

    :param method: the HTTP method.
    :param target: the request target (path and query).
    :param headers: the request headers.
    :param body: the request body.
    """
    scope = _SCOPE.search(headers.get("Authorization", "") or "")
    service = scope.group(1) if scope else "unknown"
    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    action = ""
    params: dict[str, str] = {}
    if "x-www-form-urlencoded" in (headers.get("Content-Type") or ""):
        params = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()
                  if len(v[0]) < 200}
    if headers.get("X-Amz-Target"):
        action = headers["X-Amz-Target"].rsplit(".", 1)[-1]
    elif "Action" in query:
        action = query["Action"][0]
    elif "Action" in params:
        action = params["Action"]
    if not action:
        action = (_s3_action(method, query, parts.path) if service == "s3"
                  else f"{method} {parts.path}")
    attempt = _ATTEMPT.search(headers.get("amz-sdk-request", "") or "")
    return Call(service=service, action=action, method=method, path=target,
                attempt=int(attempt.group(1)) if attempt else 1,
                max_attempts=int(attempt.group(2) or 0) if attempt else 0,
                invocation=headers.get("amz-sdk-invocation-id", "") or "",
                at=time.monotonic(), params=params)


def throttling_answer(call: Call) -> tuple[int, dict[str, str], bytes]:
    """The answer AWS gives a throttled call of ``call``'s service."""
    if call.service == "s3":
        return 503, {"Content-Type": "application/xml"}, (
            b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
            b"<Message>Please reduce your request rate.</Message></Error>")
    if call.service == "cloudformation":
        return 400, {"Content-Type": "text/xml"}, (
            b"<ErrorResponse xmlns='http://cloudformation.amazonaws.com/doc/2010-05-15/'>"
            b"<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded"
            b"</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>")
    if call.service in {"lambda", "apigateway"}:
        return 429, {"Content-Type": "application/json",
                     "x-amzn-ErrorType": "TooManyRequestsException"}, (
            b'{"Type": "User", "message": "Rate exceeded"}')
    return 503, {"Content-Type": "text/plain"}, b"Service Unavailable"


class _QuietServer(ThreadingHTTPServer):
    """A threading server that does not print the resets of killed clients."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Connections a killed worker left are reset: expected here, not an error."""
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class FaultProxy:
    """The proxy; a context manager that starts and stops its server thread.

    :param upstream: the emulator's endpoint URL (``http://127.0.0.1:PORT``).
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.calls: list[Call] = []
        self.hooks: list[Hook] = []
        self._lock = threading.Lock()
        self._share = 0.0
        self._throttle_match: Callable[[Call], bool] = lambda call: True
        self._random = random.Random(0)
        self._down = False
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fault-proxy")

    @property
    def port(self) -> int:
        """The proxy's loopback port."""
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        """The URL clients use instead of the emulator's."""
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ----- faults

    def throttle(self, share: float, match: Callable[[Call], bool] | None = None,
                 seed: int = 15) -> None:
        """Throttle ``share`` of the (matching) calls from now on; ``0`` stops it.

        :param share: the fraction of calls refused, 0 to 1.
        :param match: which calls may be throttled (all when ``None``).
        :param seed: the random draw's seed, so a run can be repeated.
        """
        with self._lock:
            self._share = share
            self._throttle_match = match or (lambda call: True)
            self._random = random.Random(seed)

    def outage(self, down: bool) -> None:
        """Start (``True``) or end (``False``) an outage: connections closed unanswered.

        :param down: whether the endpoint is down.
        """
        self._down = down

    def on(self, match: Callable[[Call], bool], action: Callable[[Call], None],
           when: str = "after", once: bool = True) -> Hook:
        """Run ``action`` on matching calls.

        :param match: which calls.
        :param action: what to run, given the call.
        :param when: ``"before"`` forwarding (the call then goes unanswered, its client
            being gone) or ``"after"`` the emulator answered (the answer is then relayed).
        :param once: remove the hook after its first call.
        """
        hook = Hook(match, action, when, once)
        with self._lock:
            self.hooks.append(hook)
        return hook

    def clear(self) -> None:
        """End every fault and remove every hook (recorded calls are kept)."""
        with self._lock:
            self._share, self._down, self.hooks = 0.0, False, []

    # ----- records

    def since(self, start: int) -> list[Call]:
        """The calls recorded after the first ``start`` ones.

        :param start: ``len(proxy.calls)`` at an earlier moment.
        """
        with self._lock:
            return list(self.calls[start:])

    # ----- serving

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _hooks_for(self, call: Call, when: str) -> list[Hook]:
        with self._lock:
            found = [h for h in self.hooks if h.when == when and h.match(call)]
            for hook in found:
                hook.fired.append(call)
                if hook.once:
                    self.hooks.remove(hook)
        return found

    def _throttled(self, call: Call) -> bool:
        with self._lock:
            return (self._share > 0 and self._throttle_match(call)
                    and self._random.random() < self._share)

    def _forward(self, method: str, target: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=300)
        try:
            conn.request(method, target, body=body if body or method in {"PUT", "POST"}
                         else None, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            return answer.status, answer.getheaders(), data
        finally:
            conn.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet: calls are recorded, not logged."""

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                length = str(len(body))
                for name, value in headers:
                    if name.lower() == "content-length" and self.command == "HEAD":
                        length = value  # the object's size, as the emulator said
                    elif name.lower() not in HOP_HEADERS and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", length)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _drop(self, call: Call, fault: str) -> None:
                call.fault = fault
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)

            def _serve(self) -> None:
                body = self._body()
                call = describe(self.command, self.path, self.headers, body)
                proxy._record(call)
                if proxy._down:
                    self._drop(call, "outage")
                    return
                before = proxy._hooks_for(call, "before")
                for hook in before:
                    hook.action(call)
                if before:
                    self._drop(call, "hook before")
                    return
                if proxy._throttled(call):
                    status, headers, data = throttling_answer(call)
                    call.status, call.fault = status, "throttled"
                    self._send(status, list(headers.items()), data)
                    return
                forwarded = {k: v for k, v in self.headers.items()
                             if k.lower() not in HOP_HEADERS}
                status, answer_headers, data = proxy._forward(self.command, self.path,
                                                              forwarded, body)
                call.status = status
                for hook in proxy._hooks_for(call, "after"):
                    hook.action(call)
                with contextlib.suppress(OSError):
                    self._send(status, answer_headers, data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = _serve  # noqa: N815

        return Handler
