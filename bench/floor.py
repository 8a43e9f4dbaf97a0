"""The app's per-request floor in-process (no gunicorn, no network): CPU per
request of ``GET /healthz`` through the ledger app and of a trivial Flask app,
and of registrations split into the desk (the command) and everything around
it (the web layer: api.registration_fast_path's checks, validation, the
response), and that again through Flask's whole request cycle (the app built
without the fast path: what "outside the desk" measured before it).

Requests are WSGI calls with a prebuilt environ (no test client); the figures
are the thread's own CPU time (``time.thread_time``), the lowest and the median
of chunks of 250 requests (the lowest is the least disturbed by other
processes on a shared machine).

Usage: .venv/bin/python bench/floor.py [--requests 5000] [--registrations 2500]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask, jsonify  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from api.app import create_app  # noqa: E402
from entrypoints.bootstrap import bootstrap  # noqa: E402
from ledger.config import Settings  # noqa: E402
from ledger.money import Money  # noqa: E402
from tests.support.postgres import TestServer  # noqa: E402

CHUNK = 250


def environ(path: str, method: str = "GET") -> dict[str, Any]:
    return EnvironBuilder(path=path, method=method, content_type="application/json" if method == "POST" else None,
                          headers={"User-Agent": "bench", "Host": "127.0.0.1:8000"}).get_environ()


def call(app: Callable[..., Any], base: dict[str, Any], body: bytes = b"") -> str:
    status: list[str] = []
    env = dict(base, **{"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body))})
    answer = app(env, lambda s, h, e=None: status.append(s))
    for _ in answer:
        pass
    if hasattr(answer, "close"):  # WSGI: an iterable, closed if it can be
        answer.close()
    return status[0]


def chunks(count: int, one: Callable[[int], float]) -> list[float]:
    """CPU ms per request of each chunk of ``CHUNK`` requests, sorted."""
    out = []
    for start in range(0, count, CHUNK):
        cpu = time.thread_time()
        extra = sum(one(i) for i in range(start, start + CHUNK))
        out.append((time.thread_time() - cpu - extra) / CHUNK * 1000)
    return sorted(out)


def show(name: str, figures: list[float]) -> None:
    print(f"{name:46s} min {figures[0] * 1000:6.1f} us, median {figures[len(figures) // 2] * 1000:6.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--registrations", type=int, default=2500)
    args = parser.parse_args()
    ledger = bootstrap(Settings.from_env({"LEDGER_DATA_DIR": tempfile.mkdtemp(), "LEDGER_SECRET_KEY": "22" * 32,
                                          "LEDGER_RATE_LIMIT_REGISTRATION": "off"}),
                       url=TestServer().new_database("floor"))
    app = create_app(ledger)
    trivial = Flask("trivial")
    trivial.get("/healthz")(lambda: jsonify({"status": "ok"}))
    health = environ("/healthz")
    for name, wsgi in (("trivial Flask app, GET /healthz", trivial), ("ledger app, GET /healthz", app)):
        call(wsgi, health)
        show(name, chunks(args.requests, lambda i, w=wsgi: call(w, health) and 0.0))  # type: ignore[misc]

    service = ledger.service
    org = service.register_organizer(name="Bench", country="US", plan_size=1_000_000)
    service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
    def new_event(i: int) -> str:
        return str(service.create_event(
            organizer_id=str(org.id), title=f"E{i}", description="", timezone="UTC", permanent=False,
            sessions=[datetime(2037, 12, 1, tzinfo=UTC)], price=Money.parse("10.00", "USD"), provider="manual").id)

    events = [environ(f"/v1/events/{new_event(i)}/registrations", "POST") for i in range(200)]
    desk, register = ledger.registrations, ledger.registrations.register
    in_desk = [0.0]

    def timed(*a: Any, **k: Any) -> Any:  # the desk's own CPU, to subtract
        cpu = time.thread_time()
        try:
            return register(*a, **k)
        finally:
            in_desk[0] += time.thread_time() - cpu

    desk.register = timed  # type: ignore[method-assign]

    def registration(i: int, wsgi: Callable[..., Any] = app) -> float:
        body = json.dumps({"name": "Ada", "email": f"ada+{i}@example.com"}).encode()
        in_desk[0] = 0.0
        assert call(wsgi, events[i % len(events)], body).startswith("201")
        return 0.0

    def outside(i: int, wsgi: Callable[..., Any] = app) -> float:
        registration(i, wsgi)
        return in_desk[0]

    for i in range(-400, 0):
        registration(i)
    show("registration, whole request", chunks(args.registrations, registration))
    show("registration, outside the desk", chunks(args.registrations, lambda i: outside(args.registrations + i)))
    # The same through Flask's whole request cycle (api.registration_fast_path
    # left out): what the two lines above measured before it.
    flask_only = create_app(ledger, fast_path=False)
    n = 2 * args.registrations
    show("registration through Flask, outside the desk",
         chunks(args.registrations, lambda i: outside(n + i, flask_only)))
    ledger.close()


if __name__ == "__main__":
    main()
