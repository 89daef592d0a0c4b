"""A tiny local AWS endpoint that refuses the first requests (``Throttling`` and the like)
and then answers, for tests of botocore's retries and of :func:`aws_reachable`.

It speaks just enough of two protocols: CloudFormation's query protocol (an
``ErrorResponse`` or an empty ``DescribeStacks`` answer) and S3's REST-XML (an ``Error``,
or a bare 200; a HEAD answer has no body, as S3's).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CFN = "http://cloudformation.amazonaws.com/doc/2010-05-15/"
DESCRIBE_STACKS = (f'<DescribeStacksResponse xmlns="{CFN}"><DescribeStacksResult><Stacks/>'
                   f"</DescribeStacksResult><ResponseMetadata><RequestId>ok-1</RequestId>"
                   f"</ResponseMetadata></DescribeStacksResponse>")


@dataclass
class Script:
    """What the server answers: ``refusals`` times ``status``/``code``, then success
    (``refusals=None``: refuse forever).

    :param refusals: how many requests are refused.
    :param status: the HTTP status of a refusal.
    :param code: the AWS error code of a refusal.
    """

    refusals: int | None = 2
    status: int = 400
    code: str = "Throttling"
    seen: list[str] = field(default_factory=list)

    def refuse(self) -> bool:
        """Whether the request just seen is refused."""
        return self.refusals is None or len(self.seen) <= self.refusals


class _Handler(BaseHTTPRequestHandler):
    script: Script

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode(errors="replace") if length else ""
        self.script.seen.append(f"{self.command} {self.path} {body[:80]}")
        s3 = "Action=" not in body
        if self.script.refuse():
            status, code = self.script.status, self.script.code
            text = (f"<Error><Code>{code}</Code><Message>refused by the test</Message>"
                    f"<RequestId>r-1</RequestId></Error>") if s3 else (
                f'<ErrorResponse xmlns="{CFN}"><Error><Type>Sender</Type><Code>{code}</Code>'
                f"<Message>Rate exceeded</Message></Error><RequestId>r-1</RequestId>"
                f"</ErrorResponse>")
        else:
            status, text = 200, "" if s3 else DESCRIBE_STACKS
        data = b"" if self.command == "HEAD" else text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        """Quiet."""


@contextmanager
def refusing_endpoint(script: Script) -> Iterator[str]:
    """Serve ``script`` on a free loopback port; yield its endpoint URL.

    :param script: what to answer; its ``seen`` lists the requests received.
    """
    handler = type("Handler", (_Handler,), {"script": script})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
