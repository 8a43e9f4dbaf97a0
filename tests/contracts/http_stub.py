"""A small threaded HTTP server for provider contract tests.

Each provider server (``stripe_contract``, ``payu_contract``,
``paypal_contract``) subclasses :class:`ContractServer` and declares routes.
The base class gives every one of them the same test controls:

* a log of every request received (``requests``), to assert what a gateway
  actually sent;
* failure injection: the next *n* requests answer an error status
  (:meth:`ContractServer.fail_next`) or answer only after a delay longer than
  the client's timeout (:meth:`ContractServer.delay_next`), optionally having
  *executed* the request first, which is how a crash between "the provider
  did it" and "we recorded it" looks from our side;
* webhook delivery to any URL (:meth:`ContractServer.deliver`).

Real sockets on 127.0.0.1 only; port 0 lets the OS pick a free port.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests


@dataclass(frozen=True)
class Request:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode(), keep_blank_values=True)

    def query_pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.query, keep_blank_values=True)


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        status,
        json.dumps(payload).encode(),
        {"Content-Type": "application/json", **(headers or {})},
    )


@dataclass
class _Fault:
    status: int | None = None
    delay: float = 0.0
    execute: bool = True
    path: re.Pattern[str] | None = None  # None: any request

    def applies_to(self, request: Request) -> bool:
        return self.path is None or self.path.fullmatch(request.path) is not None


Handler = Callable[[Request, re.Match[str]], Response]


class ContractServer:
    """Base class: routing, request log, failure injection, delivery."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.RLock()
        self._faults: deque[_Fault] = deque()
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life-cycle ---------------------------------------------------------

    def start(self) -> ContractServer:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        server.daemon_threads = True  # a delayed handler must not block stop()
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- test controls ------------------------------------------------------

    def fail_next(self, count: int = 1, status: int = 500, *, path: str | None = None) -> None:
        """The next ``count`` requests (to ``path``, a regex, if given) answer
        ``status`` without executing."""
        pattern = re.compile(path) if path else None
        with self._lock:
            self._faults.extend(_Fault(status=status, path=pattern) for _ in range(count))

    def delay_next(
        self,
        count: int = 1,
        seconds: float = 2.0,
        *,
        execute: bool = True,
        path: str | None = None,
    ) -> None:
        """The next ``count`` requests (to ``path``, a regex, if given)
        answer only after ``seconds``.

        With ``execute`` (default) the request takes effect first, so the
        client times out on something the provider did: a lost response.
        """
        pattern = re.compile(path) if path else None
        with self._lock:
            self._faults.extend(_Fault(delay=seconds, execute=execute, path=pattern) for _ in range(count))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def requests_to(self, method: str, path_pattern: str) -> list[Request]:
        """Logged requests whose path matches ``path_pattern`` (a regex)."""
        pattern = re.compile(path_pattern)
        with self._lock:
            return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    @staticmethod
    def deliver(url: str, headers: Mapping[str, str], body: bytes) -> int:
        """POST a (signed) webhook to ``url``; returns the HTTP status."""
        response = requests.post(url, data=body, headers=dict(headers), timeout=5)
        return response.status_code

    # -- for subclasses -----------------------------------------------------

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(pattern), handler))

    def outage(self, status: int) -> Response:
        """The body of an injected failure; providers override the shape."""
        return json_response(status, {"error": "injected failure"})

    def not_found(self, request: Request) -> Response:
        return json_response(404, {"error": f"no route for {request.method} {request.path}"})

    def intercept(self, request: Request) -> Response | None:
        """Answer before routing (auth, idempotent replay); ``None`` routes."""
        return None

    def after(self, request: Request, response: Response) -> None:
        """See a routed answer (e.g. to store it for idempotent replay)."""

    def dispatch(self, request: Request) -> tuple[Response, float]:
        with self._lock:
            self.requests.append(request)
            fault = next((f for f in self._faults if f.applies_to(request)), None)
            if fault is not None:
                self._faults.remove(fault)
        if fault is not None and fault.status is not None:
            return self.outage(fault.status), 0.0
        if fault is not None and not fault.execute:
            return self.outage(503), fault.delay
        delay = fault.delay if fault else 0.0
        with self._lock:  # providers serialise writes; so do we
            response = self.intercept(request)
            if response is None:
                response = self._route(request)
                self.after(request, response)
        return response, delay

    def _route(self, request: Request) -> Response:
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                return handler(request, match)
        return self.not_found(request)


def _make_handler(owner: ContractServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # one small answer, no 40 ms delayed-ACK stall

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parts.query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            response, delay = owner.dispatch(request)
            if delay:
                time.sleep(delay)
            try:
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout test): nothing to answer

        def log_message(self, *args: Any) -> None:
            pass  # keep test output quiet

    for verb in ("GET", "POST", "PUT", "DELETE"):  # http.server looks up do_<VERB>
        setattr(_Handler, f"do_{verb}", _Handler._handle)
    return _Handler


class WebhookSink(ContractServer):
    """Stands in for our webhook endpoint: records every POST, answers 200.

    ``received`` holds ``(headers, body)`` exactly as delivered, ready for
    ``gateway.parse_notification``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.route("POST", r"/.*", self._record)

    @property
    def url(self) -> str:
        return f"{self.base_url}/webhook"

    def _record(self, request: Request, _: re.Match[str]) -> Response:
        self.received.append((request.headers, request.body))
        return Response(200, b"")
