"""A lean path for the one request that comes in floods: the public sign-up,
``POST /v1/events/<event_id>/registrations`` (issue 17).

Why: Flask's request cycle around the desk -- request context, routing, the
hooks of every request, webargs, the view, werkzeug's response -- cost about a
third of a registration's in-process CPU (``bench/floor.py``: 0.30 of 0.90 ms;
this layer: under 0.10 ms).  For the ordinary sign-up nearly all of it did
nothing: no limit applies, no key is claimed, no session, no cookie.

What: a WSGI layer in front of the Flask app (``app.wsgi_app``) that answers
the *common case* of that one endpoint itself and hands every other request,
untouched, to Flask.  It keeps, for the requests it answers:

* the same input checks: :mod:`api.input_guard` (JSON Python can read safely,
  text PostgreSQL can store) and the view's own ``RegistrationCreateSchema``
  instance, loaded as webargs loads it (``unknown`` from the schema: raise);
* the same actor (``public``) and no idempotency key for the desk, as the
  hooks set them (:func:`api.app._default_actor`, :mod:`api.idempotency`);
* the same command and answer: :func:`api.blueprints.registrations.register`,
  which the view calls too, and the same headers werkzeug sends for it
  (``Content-Type``, ``Content-Length``, ``ETag``, ``Location``);
* the same problem+json for whatever the desk raises (:func:`api.errors.render`).

When it steps aside (everything goes to Flask as it came, the body intact):
any other method, path or query string; a body that is not exactly
``application/json`` with a ``Content-Length`` of 1 to ``MAX_BODY_BYTES``
bytes; ``Transfer-Encoding``, ``Idempotency-Key``, ``If-Match`` or ``Cookie``
headers; a body the input guard or the schema refuses (Flask renders the
refusal -- nothing was written); and, not installed at all, when the
registration rate limit is on (:func:`install`; the default settings have it
on, ``LEDGER_RATE_LIMIT_REGISTRATION=off`` lifts it, as the benchmarks do).
It never steps aside after the desk was called: a command must not run twice.

No Flask context is needed: ``ledger`` imports nothing from Flask, and the
two context variables the desk reads are set here for every request it
answers (threads are reused).

Drift: :func:`install` fails at start-up if the app's request hooks are not
the ones whose effect is reproduced here, or if Flask would route the path
elsewhere, so a new hook or route cannot be skipped silently; and
``tests/e2e/test_registration_wsgi_fast_path.py`` sends the same requests both ways
and compares status, headers and bytes.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from marshmallow import ValidationError
from werkzeug.http import HTTP_STATUS_CODES

from api import errors
from api.blueprints import registrations
from api.input_guard import parse_json, refuse_walk
from ledger.actor import current_actor
from ledger.errors import LedgerError
from ledger.idempotency_store import active_key

if TYPE_CHECKING:
    from flask import Flask

    from ledger.registration_desk import RegistrationDesk

ENDPOINT = "registrations.Registrations"
#: The paths served here: one event id of URL-safe ASCII (a UUID, or an
#: unknown id the desk refuses with 404).  Others -- odd characters, slashes
#: -- go to Flask, whose routing and input guard then decide.
_PATH = re.compile(r"/v1/events/([0-9A-Za-z._~-]{1,200})/registrations")
#: Request headers some hook or Flask itself acts on for this endpoint.
_FLASK_HEADERS = ("HTTP_IDEMPOTENCY_KEY", "HTTP_IF_MATCH", "HTTP_COOKIE", "HTTP_TRANSFER_ENCODING")
#: The request hooks of the app (``module.qualname``), in order, whose effect
#: for this endpoint without a limit, key or cookie is what the layer does.
EXPECTED_HOOKS = {
    "before_request": ("api.rate_limits._check_only.<locals>.check_limited", "api.app._default_actor",
                       "api.input_guard.refuse_unreadable_input", "api.idempotency._before"),
    "after_request": ("api.rate_limits._check_only.<locals>.inject_limited", "api.rate_limits._retry_after",
                      "api.idempotency._after"),
    "teardown_request": ("api.rate_limits._check_only.<locals>.release_limited", "api.idempotency._teardown"),
    "url_value_preprocessor": (),
}
_STATUS_LINES = {status: f"{status} {HTTP_STATUS_CODES[status].upper()}" for status in (200, 201)}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class RegistrationFastPath:
    """The WSGI layer (module docstring); ``served`` counts the requests it
    answered itself (for tests and benchmarks; not locked, so approximate
    under threads)."""

    def __init__(self, flask_app: WSGIApp, desk: RegistrationDesk, max_body: int) -> None:
        self.flask_app = flask_app
        self.desk = desk
        self.max_body = max_body
        self.served = 0

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        event_id = self._event_id(environ)
        if event_id is None:
            return self.flask_app(environ, start_response)
        length = int(environ["CONTENT_LENGTH"])
        raw = environ["wsgi.input"].read(length)
        body = self._loaded(raw) if len(raw) == length else None
        if body is None:  # Flask reads the same bytes and answers (or refuses) as always
            environ["wsgi.input"] = io.BytesIO(raw)
            return self.flask_app(environ, start_response)
        self.served += 1
        current_actor.set("public")
        active_key.set(None)
        try:
            text, status, version, location = registrations.register(self.desk, event_id, body, None)
        except Exception as exc:  # after the desk was called: answered here, never by Flask again
            return errors.render(exc)(environ, start_response)  # type: ignore[no-any-return]
        data = text.encode()
        start_response(_STATUS_LINES[status], [
            ("Content-Type", "application/json"), ("Content-Length", str(len(data))),
            ("ETag", f'"{version}"'), ("Location", location)])
        return [data]

    def _event_id(self, environ: dict[str, Any]) -> str | None:
        """The event id of a request this layer answers, else ``None`` (then
        nothing of the request has been read)."""
        if environ["REQUEST_METHOD"] != "POST" or environ.get("QUERY_STRING"):
            return None
        found = _PATH.fullmatch(environ.get("PATH_INFO", ""))
        if found is None or any(name in environ for name in _FLASK_HEADERS):
            return None
        content_type = environ.get("CONTENT_TYPE", "")
        if content_type != "application/json" and content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        length = environ.get("CONTENT_LENGTH", "")
        if not (length.isascii() and length.isdigit() and 0 < int(length) <= self.max_body):
            return None
        return found.group(1)

    @staticmethod
    def _loaded(raw: bytes) -> dict[str, Any] | None:
        """The body as the view receives it, or ``None`` for anything the
        input guard or the schema would refuse."""
        try:
            document = parse_json(raw)
            refuse_walk(document)
            loaded: dict[str, Any] = registrations.CREATE_SCHEMA.load(document)
        except (LedgerError, ValidationError):
            return None
        return loaded


def install(app: Flask, desk: RegistrationDesk, max_body: int) -> RegistrationFastPath | None:
    """Put the layer in front of ``app``, unless a rate limit applies to the
    sign-up (then every request goes through Flask-Limiter).  Fails if the
    app's hooks or routing are not what the layer reproduces."""
    if ENDPOINT in app.extensions.get("rate_limited_endpoints", frozenset()):
        return None
    hooks: dict[str, Any] = {
        "before_request": app.before_request_funcs, "after_request": app.after_request_funcs,
        "teardown_request": app.teardown_request_funcs, "url_value_preprocessor": app.url_value_preprocessors,
    }
    for kind, expected in EXPECTED_HOOKS.items():
        found = tuple(f"{f.__module__}.{f.__qualname__}" for key in (None, "registrations")
                      for f in hooks[kind].get(key, ()))
        if found != expected:
            raise RuntimeError(f"{kind} hooks {found} are not the ones api.registration_fast_path "
                               f"reproduces {expected}: review it")
    routed = app.url_map.bind("localhost").match("/v1/events/e-1/registrations", "POST")
    if routed != (ENDPOINT, {"event_id": "e-1"}) or _PATH.fullmatch("/v1/events/e-1/registrations") is None:
        raise RuntimeError(f"the sign-up is routed to {routed}, not {ENDPOINT}: review api.registration_fast_path")
    layer = RegistrationFastPath(app.wsgi_app, desk, max_body)
    app.wsgi_app = layer  # type: ignore[method-assign]
    return layer
