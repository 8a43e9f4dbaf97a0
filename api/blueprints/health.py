"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.context import current_ledger
from api.responses import respond

blp = Blueprint("health", __name__, description="Health checks")


class HealthSchema(Schema):
    status = fields.String(metadata={"example": "ok"})


class ProjectionsStatusSchema(Schema):
    """Where the views stand (``projections.runner.status``), or only
    ``error`` when that could not be read."""

    generation = fields.Integer(allow_none=True, metadata={"description": "the active generation"})
    position = fields.Integer(metadata={"description": "log position the views reflect"})
    head = fields.Integer(metadata={"description": "last position in the log"})
    lag = fields.Integer(metadata={"description": "events committed, not yet in the views"})
    rebuilding = fields.Boolean()
    rebuild_position = fields.Integer(allow_none=True)
    rebuild_target = fields.Integer(allow_none=True)
    error = fields.String(metadata={"description": "the probe failed: the exception's type"})


class ReadySchema(Schema):
    status = fields.String(metadata={"enum": ["ready", "unavailable"]})
    database = fields.String(metadata={"enum": ["up", "down"]})
    projections = fields.Nested(ProjectionsStatusSchema, metadata={"description": "absent when the database is down"})


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> Any:
        """The process is alive."""
        return respond(HealthSchema, {"status": "ok"})


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, schema=ReadySchema, description="The database does not answer")
    def get(self) -> Any:
        """The database answers; projection lag is reported when known."""
        ledger = current_ledger()
        try:
            with ledger.db.transaction() as conn:
                conn.execute("SELECT 1")
        except Exception:
            return respond(ReadySchema, {"status": "unavailable", "database": "down"}, 503)
        payload: dict[str, Any] = {"status": "ready", "database": "up"}
        for name, probe in current_app.extensions.get("readiness_probes", {}).items():
            try:
                payload[name] = probe(ledger)
            except Exception as exc:  # a probe must never make readiness a 500
                payload[name] = {"error": type(exc).__name__}
        return respond(ReadySchema, payload)
