"""Organizers, their plans, provider connections, and API tokens."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import authenticated
from api.context import current_ledger
from api.idempotency import derived_id, unstored_key
from api.responses import if_match, respond
from api.schemas import (
    ConnectionPageSchema,
    ConnectionSchema,
    ContactChangeSchema,
    OrganizerCreateSchema,
    OrganizerSchema,
    PlanChangeSchema,
    ProviderConnectSchema,
    TokenCreateSchema,
    TokenSchema,
)
from ledger import api_tokens
from ledger.domain.organizer import Organizer

blp = Blueprint("organizers", __name__, url_prefix="/v1", description="Organizers and providers")


def organizer_json(organizer: Organizer) -> dict[str, Any]:
    return {
        "id": str(organizer.id),
        "version": organizer.version,
        "name": organizer.name,
        "country": organizer.country,
        "plan_size": organizer.plan_size,
        "email": organizer.email,
        "created_at": organizer.created_on.isoformat(),
    }


@blp.route("/organizers")
class Organizers(MethodView):
    @authenticated("admin")
    @blp.arguments(OrganizerCreateSchema)
    @blp.response(201, OrganizerSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Register an organizer (admin)."""
        organizer = current_ledger().service.register_organizer(
            name=body["name"], country=body["country"], plan_size=body["plan_size"],
            new_id=derived_id("organizer"), email=body["email"],
        )
        return respond(OrganizerSchema, organizer_json(organizer), 201, version=organizer.version,
                       location=f"/v1/organizers/{organizer.id}")


@blp.route("/organizers/<org>")
class OrganizerResource(MethodView):
    @authenticated("organizer", "finance")
    @blp.response(200, OrganizerSchema)
    def get(self, org: str) -> Any:
        """One organizer."""
        organizer = current_ledger().service.organizer(org, g.principal.scope)
        return respond(OrganizerSchema, organizer_json(organizer), version=organizer.version)


@blp.route("/organizers/<org>/plan")
class Plan(MethodView):
    @authenticated("admin")
    @blp.arguments(PlanChangeSchema)
    @blp.response(200, OrganizerSchema)
    def post(self, body: dict[str, Any], org: str) -> Any:
        """Change the plan size: limits future sales (R9)."""
        organizer = current_ledger().service.change_plan(
            org, body["plan_size"], expected_version=if_match()
        )
        return respond(OrganizerSchema, organizer_json(organizer), version=organizer.version)


@blp.route("/organizers/<org>/contact")
class Contact(MethodView):
    @authenticated("organizer")
    @blp.arguments(ContactChangeSchema)
    @blp.response(200, OrganizerSchema)
    def put(self, body: dict[str, Any], org: str) -> Any:
        """Set, change or remove (``null``) the organizer's contact e-mail: the
        organizer itself or an admin.  Setting the address it already has
        records nothing."""
        g.principal.check_organizer(org)
        organizer = current_ledger().service.change_contact(
            org, body["email"], scope=g.principal.scope, expected_version=if_match()
        )
        return respond(OrganizerSchema, organizer_json(organizer), version=organizer.version)


def _connections_json(organizer: Organizer) -> list[dict[str, Any]]:
    return [
        {"id": cid, "provider": c["provider"], "masked": c["masked"]}
        for cid, c in organizer.connections.items()
    ]


@blp.route("/organizers/<org>/providers")
class Providers(MethodView):
    @authenticated("organizer")
    @blp.arguments(ProviderConnectSchema)
    @blp.response(201, ConnectionSchema)
    def post(self, body: dict[str, Any], org: str) -> Any:
        """Connect a payment provider (R1–R4).  Secrets are stored encrypted and
        never echoed."""
        g.principal.check_organizer(org)
        provider = body.pop("provider")
        new_id = derived_id("connection")
        connected = current_ledger().connector.connect(
            org, provider, body, scope=g.principal.scope, connection_id=str(new_id) if new_id else None
        )
        payload: dict[str, Any] = {"id": connected.connection_id, "provider": provider, "masked": connected.masked}
        if connected.webhook_url is not None:
            payload["webhook_url"] = connected.webhook_url
        return respond(ConnectionSchema, payload, 201, version=connected.organizer.version)

    @authenticated("organizer", "finance")
    @blp.response(200, ConnectionPageSchema)
    def get(self, org: str) -> Any:
        """Connections, secrets masked."""
        organizer = current_ledger().service.organizer(org, g.principal.scope)
        return respond(ConnectionPageSchema, {"items": _connections_json(organizer), "next": None},
                       version=organizer.version)


@blp.route("/tokens")
class Tokens(MethodView):
    @authenticated("admin")
    @blp.arguments(TokenCreateSchema)
    @blp.response(201, TokenSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Issue a bearer token; it is shown once, only its hash is kept."""
        ledger = current_ledger()
        if body["role"] == "organizer":
            ledger.service.organizer(body["organizer_id"] or "")
        token = api_tokens.create_token(
            ledger.db, role=body["role"], organizer_id=body["organizer_id"], label=body["label"],
            once=unstored_key(),
        )
        return respond(
            TokenSchema, {"token": token, "role": body["role"], "organizer_id": body["organizer_id"]}, 201
        )
