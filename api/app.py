"""The Flask app factory (no module-level app, no connections at import)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask
from flask_smorest import Api

from api import errors, idempotency, pages
from api.blueprints import (
    events,
    health,
    join,
    ledger_log,
    organizers,
    participants,
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
    reports.blp,
    ledger_log.blp,
    join.blp,
    webhooks.blp,
)

#: Request bodies larger than this are refused with 413 before parsing.
MAX_BODY_BYTES = 64 * 1024


def create_app(ledger: Ledger) -> Flask:
    app = Flask(__name__)
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
    api = Api(app)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    pages.register(app)
    errors.register(app)
    app.before_request(_default_actor)
    app.before_request(_refuse_nul_characters)
    idempotency.register(app)
    return app


def _default_actor() -> None:
    """Every request starts anonymous (threads are reused); authenticated views
    and verified webhooks narrow it down.  See ``ledger.actor``."""
    from flask import request

    from ledger.actor import current_actor

    parts = request.path.strip("/").split("/")
    if parts[:2] == ["v1", "webhooks"] and len(parts) >= 4:
        current_actor.set(f"provider:{parts[2]}:{parts[3]}"[:120])
    else:
        current_actor.set("public")


def _nul_path(value: object, path: str) -> str | None:
    """The first place in a JSON document holding a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_path(key, path) or _nul_path(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            found = _nul_path(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def _refuse_nul_characters() -> None:
    """PostgreSQL text cannot hold NUL (U+0000): refuse it at the door with a
    422 naming the field, instead of failing deep inside a write (or, worse,
    inside a projection that would then be stuck on that event)."""
    from flask import request

    from ledger.errors import ValidationFailed

    if request.path.startswith("/v1/webhooks/"):
        return  # raw bodies, verified by signature and stored as bytes
    for name, value in [*request.args.items(multi=True), *request.form.items(multi=True)]:
        if "\x00" in name or "\x00" in value:
            raise ValidationFailed({name.replace("\x00", "") or "_query": ["must not contain NUL characters"]})
    if "\x00" in request.path:
        raise ValidationFailed({"_path": ["must not contain NUL characters"]})
    if request.is_json and request.content_length:
        body = request.get_json(silent=True, cache=True)
        found = _nul_path(body, "")
        if found is not None:
            raise ValidationFailed({found or "_body": ["must not contain NUL characters"]})
