"""A real SMTP server in the test process (aiosmtpd), as a pytest plugin.

``smtp_server`` listens on a free loopback port and captures every message it
accepts.  Tests can also make it misbehave the ways real relays do:

* ``stop()`` / ``start()`` — an outage: connections are refused, then the
  server is back on the same port;
* ``reject(address)`` — a permanent ``550`` for that recipient;
* ``defer(address, times=n)`` — a temporary ``451`` for the next n attempts;
* ``stall_after(n, seconds)`` — capture the n-th message, then hold the ``250``
  reply back: the client is "between the server's accept and its own record",
  which is where crash tests kill it.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, cast

import pytest
from aiosmtpd.controller import Controller


@dataclass
class CapturedMail:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = cast(EmailMessage, message_from_bytes(self.raw, policy=policy.default))

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body((subtype,))
        assert body is not None, f"no text/{subtype} part"
        return cast(str, body.get_content())

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")


class _Handler:
    def __init__(self, server: SmtpTestServer) -> None:
        self.server = server

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = self.server._rcpt_reply(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        stall = self.server._capture(
            CapturedMail(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.content))
        )
        if stall:
            await asyncio.sleep(stall)
        return "250 2.0.0 Message accepted for delivery"


class SmtpTestServer:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            self.port = int(s.getsockname()[1])
        self.messages: list[CapturedMail] = []
        self._cond = threading.Condition()
        self._rejects: dict[str, str] = {}
        self._defers: dict[str, tuple[int, str]] = {}
        self._stalls: dict[int, tuple[float, threading.Event]] = {}
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is None:
            controller = Controller(_Handler(self), hostname=self.host, port=self.port, ready_timeout=10)
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def reject(self, address: str, code: int = 550, text: str = "5.1.1 Mailbox does not exist") -> None:
        self._rejects[address.lower()] = f"{code} {text}"

    def defer(self, address: str, *, times: int = 1, code: int = 451,
              text: str = "4.2.0 Mailbox temporarily unavailable") -> None:
        self._defers[address.lower()] = (times, f"{code} {text}")

    def stall_after(self, count: int, seconds: float) -> threading.Event:
        """Hold the reply to the ``count``-th captured message for ``seconds``;
        the returned event is set once that message has been captured."""
        captured = threading.Event()
        self._stalls[count] = (seconds, captured)
        return captured

    def wait_for(self, count: int, timeout: float = 10.0) -> list[CapturedMail]:
        """At least ``count`` messages, or fail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} e-mails, got {len(self.messages)}: "
                                         f"{[m.subject for m in self.messages]}")
                self._cond.wait(left)
            return list(self.messages)

    def settle(self, quiet: float = 0.5) -> list[CapturedMail]:
        """The messages, once none has arrived for ``quiet`` seconds."""
        with self._cond:
            while True:
                if not self._cond.wait_for(functools.partial(self._grew_past, len(self.messages)), quiet):
                    return list(self.messages)

    def _grew_past(self, seen: int) -> bool:
        return len(self.messages) != seen

    def to(self, address: str) -> list[CapturedMail]:
        with self._cond:
            return [m for m in self.messages if address.lower() in (r.lower() for r in m.rcpt_tos)]

    # --- called from the server thread ------------------------------------------------

    def _rcpt_reply(self, address: str) -> str | None:
        key = address.lower()
        if key in self._rejects:
            return self._rejects[key]
        times, reply = self._defers.get(key, (0, ""))
        if times > 0:
            self._defers[key] = (times - 1, reply)
            return reply
        return None

    def _capture(self, mail: CapturedMail) -> float:
        with self._cond:
            self.messages.append(mail)
            self._cond.notify_all()
            stall = self._stalls.pop(len(self.messages), None)
        if stall is None:
            return 0.0
        seconds, captured = stall
        captured.set()
        return seconds


@pytest.fixture
def smtp_server() -> Iterator[SmtpTestServer]:
    server = SmtpTestServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
