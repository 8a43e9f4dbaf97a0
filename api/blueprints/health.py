"""Liveness and readiness.

``/readyz`` answers 503 when the database does not answer, or when a view or
worker is stuck (API.md "Freshness"): failing on an event, or behind the head
of the log without moving for ``ledger.consumer_health.STALL_SECONDS``.  The
workers run in other processes; each writes its health to PostgreSQL
(:mod:`ledger.consumer_health`), which is what this reads.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.context import current_ledger
from api.responses import respond
from ledger import consumer_health
from ledger.event_log import head
from projections import books_query

log = logging.getLogger(__name__)

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


class ConsumerSchema(Schema):
    """One follower of the log (a view or a worker), as it last reported."""

    name = fields.String(metadata={"example": "projections"})
    state = fields.String(metadata={"enum": ["ok", "failing", "lagging"], "description": (
        "failing: it cannot apply an event and retries with backoff; lagging: behind the head "
        "and not moving")})
    position = fields.Integer(allow_none=True, metadata={"description": "log position it has applied"})
    lag = fields.Integer(allow_none=True, metadata={"description": "events after its position"})
    moved_at = fields.String(metadata={"format": "date-time", "description": "when its position last moved"})
    failures = fields.Integer(metadata={"description": "consecutive failed attempts (0: healthy)"})
    failing_since = fields.String(allow_none=True, metadata={"format": "date-time"})
    failing_after = fields.Integer(allow_none=True, metadata={"description": "the failing batch starts after it"})
    failing_event = fields.Integer(allow_none=True, metadata={"description": "position of the event it cannot apply"})
    event_type = fields.String(allow_none=True, metadata={"example": "PaymentRecorded"})
    error_class = fields.String(allow_none=True, metadata={"example": "NumericValueOutOfRange"})
    error = fields.String(allow_none=True, metadata={"description": "the error, quoted values removed"})


class BooksStatusSchema(Schema):
    """Whether the books add up (``projections.books_query.check``)."""

    balanced = fields.Boolean(metadata={"description": "false makes the answer 503 (must never happen)"})
    position = fields.Integer(metadata={"description": "log position checked"})
    problems = fields.List(fields.String(), metadata={"description": "what does not add up"})
    error = fields.String(metadata={"description": "the check failed: the exception's type"})


class ReadySchema(Schema):
    status = fields.String(metadata={"enum": ["ready", "unavailable"]})
    database = fields.String(metadata={"enum": ["up", "down"]})
    projections = fields.Nested(ProjectionsStatusSchema, metadata={"description": "absent when the database is down"})
    consumers = fields.List(fields.Nested(ConsumerSchema), metadata={
        "description": "every view and worker that reported its health; absent when the database is down"})
    stuck = fields.List(fields.String(), metadata={
        "description": "names of the consumers that make the answer 503 (failing or lagging); "
                       "\"books\" when the books do not balance"})
    books = fields.Nested(BooksStatusSchema, metadata={"description": "absent when the database is down"})


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> Any:
        """The process is alive."""
        return respond(HealthSchema, {"status": "ok"})


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200, ReadySchema)
    @blp.alt_response(503, schema=ReadySchema, description="The database does not answer, or a view or "
                      "worker is stuck (named in `stuck`)")
    def get(self) -> Any:
        """The database answers and no view or worker is stuck; projection lag
        and every consumer's health are reported."""
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
        try:
            newest, now = head(ledger.store), consumer_health.now()
            consumers = [c.as_dict(newest, now) for c in consumer_health.read(ledger.db)]
        except Exception as exc:  # e.g. a database not migrated yet: say so, never a 500
            log.warning("readyz: consumer health unreadable: %s", type(exc).__name__)
            consumers = []
        payload["consumers"] = consumers
        payload["stuck"] = [c["name"] for c in consumers if c["state"] != "ok"]
        try:
            books = books_query.check(ledger.db)
            payload["books"] = books.as_dict()
            if not books.balanced:
                payload["stuck"].append("books")
        except Exception as exc:  # e.g. views being rebuilt into the books' layout: say so, never a 500
            payload["books"] = {"error": type(exc).__name__}
        if payload["stuck"]:
            payload["status"] = "unavailable"
            return respond(ReadySchema, payload, 503)
        return respond(ReadySchema, payload)
