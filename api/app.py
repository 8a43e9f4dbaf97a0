"""The Flask app factory (no module-level app, no connections at import)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask

from api import errors, idempotency, input_guard, openapi, pages, rate_limits, registration_fast_path
from api.blueprints import (
    books,
    erasures,
    events,
    health,
    join,
    ledger_log,
    organizers,
    participants,
    proofs,
    registrations,
    reports,
    webhooks,
)

if TYPE_CHECKING:
    from ledger.container import Ledger

#: Every API blueprint, in the order the OpenAPI document lists them.
BLUEPRINTS = (
    health.blp,
    organizers.blp,
    events.blp,
    registrations.blp,
    participants.blp,
    erasures.blp,
    reports.blp,
    books.blp,
    ledger_log.blp,
    proofs.blp,
    join.blp,
    webhooks.blp,
)

#: Request bodies larger than this are refused with 413 before parsing.
MAX_BODY_BYTES = 64 * 1024


class LedgerFlask(Flask):
    """Flask, remembering which views and hooks are plain functions.

    Flask asks ``inspect.iscoroutinefunction`` about every hook and view of
    every request (``ensure_sync``: about a dozen per request here, a tenth
    of the ``/healthz`` floor under cProfile).  Whether a function is a
    coroutine function never changes, so the answer is kept per function
    (per underlying function for bound methods: a ``MethodView`` is built
    anew per request).  Coroutine functions still go through Flask's own
    ``async_to_sync`` each time, as before."""

    def __init__(self, import_name: str) -> None:
        super().__init__(import_name)
        self._plain: set[object] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        key = getattr(func, "__func__", func)
        try:
            if key in self._plain:
                return func
        except TypeError:  # an unhashable callable object: ask every time
            return super().ensure_sync(func)
        synced = super().ensure_sync(func)
        if synced is func and len(self._plain) < 10_000:  # bounded: only defined views and hooks come here
            self._plain.add(key)
        return synced


def create_app(ledger: Ledger, *, fast_path: bool = True) -> Flask:
    """The API and the pages over ``ledger``.  ``fast_path=False`` leaves out
    :mod:`api.registration_fast_path` (every sign-up through Flask), for the
    tests and benchmarks that compare the two."""
    app = LedgerFlask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        API_TITLE="Webinar payment ledger",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "components": {
                "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}
            },
            "security": [{"bearer": []}],
        },
    )
    app.extensions["ledger"] = ledger
    api = openapi.LedgerApi(app)
    openapi.register(api)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    openapi.finish(api)
    pages.register(app)
    rate_limits.register(app, ledger)  # after the blueprints, before every other before_request hook
    errors.register(app)
    app.before_request(_default_actor)
    app.before_request(input_guard.refuse_unreadable_input)  # before anything can be written
    idempotency.register(app)
    if fast_path:  # last: it checks the hooks registered above
        registration_fast_path.install(app, ledger.registrations, MAX_BODY_BYTES)
    return app


def _default_actor() -> None:
    """Every request starts anonymous (threads are reused); authenticated views
    and verified webhooks narrow it down.  See ``ledger.actor``."""
    from flask import request

    from ledger.actor import current_actor

    path = request.path
    parts = path.strip("/").split("/") if "v1/webhooks/" in path else ()  # split only what can be a webhook
    if parts[:2] == ["v1", "webhooks"] and len(parts) >= 4:
        current_actor.set(f"provider:{parts[2]}:{parts[3]}"[:120])
    else:
        current_actor.set("public")
