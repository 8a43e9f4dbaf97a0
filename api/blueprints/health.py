"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from api.context import current_ledger
from api.responses import json_response

blp = Blueprint("health", __name__, description="Health checks")


@blp.route("/healthz")
class Health(MethodView):
    @blp.response(200)
    def get(self) -> Any:
        """The process is alive."""
        return json_response({"status": "ok"})


@blp.route("/readyz")
class Ready(MethodView):
    @blp.response(200)
    def get(self) -> Any:
        """The database answers; projection lag is reported when known."""
        ledger = current_ledger()
        try:
            with ledger.db.transaction() as conn:
                conn.execute("SELECT 1")
        except Exception:
            return json_response({"status": "unavailable", "database": "down"}, 503)
        payload: dict[str, Any] = {"status": "ready", "database": "up"}
        for name, probe in current_app.extensions.get("readiness_probes", {}).items():
            try:
                payload[name] = probe(ledger)
            except Exception as exc:  # a probe must never make readiness a 500
                payload[name] = {"error": type(exc).__name__}
        return json_response(payload)
