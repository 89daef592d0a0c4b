"""A real local SMTP server (aiosmtpd) that keeps what it receives, and the Airflow SMTP
connection that points at it: where the notification tests read their mail."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from tdv_airflow.local.aws import free_port

#: Who the connection says mail comes from and goes to.
SENDER, RECIPIENT = "airflow@tdv.example", "ml-oncall@tdv.example"


@dataclass
class Mailbox:
    """The server's address and every message it received, parsed.

    :param host: the address it listens on.
    :param port: its port.
    """

    host: str
    port: int
    received: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's handler hook: keep the message."""
        parsed = message_from_bytes(envelope.original_content or envelope.content,
                                    policy=policy.default)
        with self._lock:
            self.received.append(parsed)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def connection(self, **extra: Any) -> str:
        """The Airflow connection (JSON, for ``AIRFLOW_CONN_SMTP_DEFAULT``) of this server:
        plain SMTP, sender and recipients in its extra."""
        return json.dumps({"conn_type": "smtp", "host": self.host, "port": self.port,
                           "extra": {"disable_tls": True, "disable_ssl": True, "timeout": 10,
                                     "retry_limit": 0, "from_email": SENDER,
                                     "notify_to": RECIPIENT, **extra}})

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The messages once at least ``count`` arrived (or all there are at ``timeout``)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        with self._lock:
            return list(self.received)


def body_of(message: EmailMessage) -> str:
    """The text of a message's HTML part, tags and entities left as sent."""
    part = message.get_body(preferencelist=("html", "plain"))
    assert part is not None, message
    return str(part.get_content())


@contextmanager
def local_smtp_server(host: str = "127.0.0.1") -> Iterator[Mailbox]:
    """Run an SMTP server on a free port of ``host`` for the ``with`` block.

    :param host: the loopback address.
    """
    from aiosmtpd.controller import Controller

    mailbox = Mailbox(host, free_port(host))
    controller = Controller(mailbox, hostname=host, port=mailbox.port)
    controller.start()
    try:
        yield mailbox
    finally:
        controller.stop()
