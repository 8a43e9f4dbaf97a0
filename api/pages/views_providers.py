"""Provider connections (R1–R4): the organizer's connections, masked, and a
form per provider to connect one.

The steps are the API's (``POST /v1/organizers/{org}/providers``): required
fields per provider, R3's country rule, the optional live credential check,
secrets sealed into ``provider_secrets`` before the ``ProviderConnected``
event is saved, and only masked values ever shown again — a refused form is
re-rendered *without* the secrets typed into it.
"""

from __future__ import annotations

from flask import flash, g, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from api.context import current_ledger
from api.pages import submissions
from api.pages.blueprint import bp, field_errors, status_of
from api.pages.session_auth import signed_in
from ledger import connections
from ledger.errors import LedgerError, ValidationFailed
from ledger.pricing import PROVIDERS, check_provider_country
from ledger.providers import registry

#: Form labels for credential fields (API field names stay the names posted).
LABELS = {
    "api_key": "Secret or restricted key", "webhook_secret": "Webhook signing secret",
    "shop_id": "Shop id (PublicShopID)", "pos_id": "POS id (posId)", "client_id": "Client id",
    "client_secret": "Client secret", "second_key": "Second key (MD5)", "webhook_id": "Webhook id",
}
NAMES = {"stripe": "Stripe", "payu": "PayU", "paypal": "PayPal", "manual": "Manual (offline)"}
HINTS = {
    "stripe": "A restricted key must allow Checkout Sessions, Products and Prices (write) — R1.",
    "paypal": "Authorises the platform's API user on your PayPal account (Express Checkout) — R2.",
    "payu": "Polish registered businesses only, PLN only; bookings start once PayU verifies the shop — R3.",
    "manual": "Payments you receive yourself (bank transfer, cash) and record by hand. Not for HUF, BGN or RON.",
}


def _render(errors: dict[str, dict[str, list[str]]] | None = None, values: dict[str, str] | None = None,
            status: int = 200) -> tuple[str, int]:
    organizer = current_ledger().service.organizer(g.principal.organizer_id or "", g.principal.scope)
    forms = {p: registry.FIELDS.get(p, ()) for p in PROVIDERS}
    return render_template(
        "providers.html", organizer=organizer, forms=forms, labels=LABELS, hints=HINTS, names=NAMES,
        secret_fields=registry.SECRET_FIELDS, errors=errors or {}, values=values or {},
    ), status


@bp.get("/providers")
@signed_in("organizer")
def providers() -> tuple[str, int]:
    return _render()


@bp.post("/providers")
@signed_in("organizer")
def connect_provider() -> BaseResponse | tuple[str, int]:
    ledger = current_ledger()
    org = g.principal.organizer_id or ""
    provider = request.form.get("provider", "")
    try:
        if provider not in PROVIDERS:
            raise ValidationFailed({"provider": [f"must be one of {', '.join(PROVIDERS)}"]})
        creds: dict[str, str] = {}
        masked: dict[str, str] = {}
        if provider != "manual":
            creds = {k: request.form.get(k, "").strip() for k in registry.required_fields(provider)}
            registry.require_fields(provider, creds)
            masked = registry.mask(provider, creds)
            check_provider_country(provider, ledger.service.organizer(org, g.principal.scope).country)
            validate = ledger.extras.get("validate_credentials")
            if validate is not None:
                validate(provider, creds)

        def act() -> str:
            _, cid = ledger.service.connect_provider(
                org, provider=provider, masked=masked, scope=g.principal.scope,
                connection_id=str(submissions.derived_id("connection")),
                store_secrets=lambda cid: connections.store_secrets(
                    ledger.db, ledger.secret_box, connection_id=cid, organizer_id=org, creds=creds
                ),
            )
            flash(f"{NAMES[provider]} connected (connection {cid[:8]}).", "ok")
            return url_for("pages.providers")

        return submissions.run_once(act)
    except LedgerError as exc:
        secrets = registry.SECRET_FIELDS.get(provider, frozenset())
        kept = {k: v for k, v in request.form.items() if k in LABELS and k not in secrets}
        return _render(errors={provider: field_errors(exc)}, values=kept, status=status_of(exc))
