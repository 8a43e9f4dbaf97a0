"""Organizers, their plans, provider connections, and API tokens."""

from __future__ import annotations

from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import authenticated
from api.context import current_ledger
from api.idempotency import derived_id
from api.responses import if_match, json_response
from api.schemas import (
    ConnectionSchema,
    OrganizerCreateSchema,
    OrganizerSchema,
    PlanChangeSchema,
    ProviderConnectSchema,
    TokenCreateSchema,
)
from ledger import api_tokens, connections
from ledger.domain.organizer import Organizer
from ledger.errors import ValidationFailed
from ledger.pricing import check_provider_country
from ledger.providers import registry

blp = Blueprint("organizers", __name__, url_prefix="/v1", description="Organizers and providers")


def organizer_json(organizer: Organizer) -> dict[str, Any]:
    return {
        "id": str(organizer.id),
        "version": organizer.version,
        "name": organizer.name,
        "country": organizer.country,
        "plan_size": organizer.plan_size,
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
            new_id=derived_id("organizer"),
        )
        return json_response(organizer_json(organizer), 201, version=organizer.version,
                             location=f"/v1/organizers/{organizer.id}")


@blp.route("/organizers/<org>")
class OrganizerResource(MethodView):
    @authenticated("organizer", "finance")
    @blp.response(200, OrganizerSchema)
    def get(self, org: str) -> Any:
        """One organizer."""
        organizer = current_ledger().service.organizer(org, g.principal.scope)
        return json_response(organizer_json(organizer), version=organizer.version)


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
        return json_response(organizer_json(organizer), version=organizer.version)


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
        ledger = current_ledger()
        g.principal.check_organizer(org)
        provider = body.pop("provider")
        creds: dict[str, str] = {}
        masked: dict[str, str] = {}
        if provider != "manual":
            unknown = sorted(set(body) - set(registry.required_fields(provider)))
            if unknown:
                raise ValidationFailed({k: ["unknown field"] for k in unknown})
            registry.require_fields(provider, body)
            creds = {k: str(v).strip() for k, v in body.items()}
            masked = registry.mask(provider, creds)
            # R3 before any network call: no credential check for a provider the
            # organizer may not use anyway.
            check_provider_country(provider, ledger.service.organizer(org, g.principal.scope).country)
            validate = ledger.extras.get("validate_credentials")
            if validate is not None:
                validate(provider, creds)
        elif body:
            raise ValidationFailed({k: ["unknown field"] for k in sorted(body)})
        new_id = derived_id("connection")
        organizer, cid = ledger.service.connect_provider(
            org, provider=provider, masked=masked, scope=g.principal.scope,
            connection_id=str(new_id) if new_id else None,
            store_secrets=lambda cid: connections.store_secrets(
                ledger.db, ledger.secret_box, connection_id=cid, organizer_id=org, creds=creds
            ),
        )
        payload: dict[str, Any] = {"id": cid, "provider": provider, "masked": masked}
        if provider != "manual":
            payload["webhook_url"] = f"{ledger.settings.public_url}/v1/webhooks/{provider}/{cid}"
        return json_response(payload, 201, version=organizer.version)

    @authenticated("organizer", "finance")
    @blp.response(200, ConnectionSchema(many=True))
    def get(self, org: str) -> Any:
        """Connections, secrets masked."""
        organizer = current_ledger().service.organizer(org, g.principal.scope)
        return json_response({"items": _connections_json(organizer), "next": None},
                             version=organizer.version)


@blp.route("/tokens")
class Tokens(MethodView):
    @authenticated("admin")
    @blp.arguments(TokenCreateSchema)
    @blp.response(201)
    def post(self, body: dict[str, Any]) -> Any:
        """Issue a bearer token; it is shown once, only its hash is kept."""
        ledger = current_ledger()
        if body["role"] == "organizer":
            ledger.service.organizer(body["organizer_id"] or "")
        token = api_tokens.create_token(
            ledger.db, role=body["role"], organizer_id=body["organizer_id"], label=body["label"]
        )
        return json_response(
            {"token": token, "role": body["role"], "organizer_id": body["organizer_id"]}, 201
        )
