"""Provider connections (R1–R4): the organizer's connections, masked, and a
form per provider to connect one; and the organizer's contact e-mail, where
disputes, reversals and failed refunds are written about.

The steps are the API's (``POST /v1/organizers/{org}/providers``): required
fields per provider, R3's country rule, the optional live credential check,
secrets sealed into ``provider_secrets`` before the ``ProviderConnected``
event is saved, and only masked values ever shown again — a refused form is
re-rendered *without* the secrets typed into it.
"""

from __future__ import annotations

import re

from flask import flash, g, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from api.context import current_ledger
from api.pages import submissions
from api.pages.blueprint import bp, field_errors, status_of
from api.pages.i18n import _, gettext
from api.pages.session_auth import signed_in
from ledger.errors import LedgerError, ValidationFailed
from ledger.providers import registry

#: What the forms show, from each provider's own description.
NAMES = {cls.provider: cls.label for cls in registry.PROVIDER_CLASSES}
HINTS = {cls.provider: cls.hint for cls in registry.PROVIDER_CLASSES}
LABELS = {f.name: f.label for cls in registry.PROVIDER_CLASSES for f in cls.credential_fields}
FORMS = {cls.provider: cls.field_names() for cls in registry.PROVIDER_CLASSES}
SECRET_FIELDS = {cls.provider: cls.secret_field_names() for cls in registry.PROVIDER_CLASSES}
#: Credential fields a provider does not require (a field may say so with
#: ``optional=True`` or ``required=False``), marked "optional" on the forms.
OPTIONAL_FIELDS = {
    cls.provider: frozenset(f.name for f in cls.credential_fields
                            if getattr(f, "optional", False) or not getattr(f, "required", True))
    for cls in registry.PROVIDER_CLASSES
}
#: A rule id a description may end with ("— R1."): for code readers, not for people.
_RULE_SUFFIX = re.compile(r"\s*[—-]\s*R\d{1,2}\.?\s*$")


def provider_hint(provider: str) -> str:
    """The provider's own one-sentence hint, without rule ids, in the page's
    language (the Polish texts are in the catalog, see ``provider_texts``)."""
    text = _RULE_SUFFIX.sub(".", HINTS.get(provider, "")).strip()
    return gettext(text) if text else ""


def _render(errors: dict[str, dict[str, list[str]]] | None = None, values: dict[str, str] | None = None,
            status: int = 200) -> tuple[str, int]:
    organizer = current_ledger().service.organizer(g.principal.organizer_id or "", g.principal.scope)
    return render_template(
        "providers.html", organizer=organizer, forms=FORMS, labels=LABELS, hints=HINTS, names=NAMES,
        secret_fields=SECRET_FIELDS, optional_fields=OPTIONAL_FIELDS, hint=provider_hint, errors=errors or {},
        values=values or {},
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
        if provider not in registry.PROVIDERS:
            choices = ", ".join(NAMES.values())
            raise ValidationFailed({"provider": [_("Choose one of: %(providers)s.", providers=choices)]})
        fields = {k: request.form.get(k, "") for k in FORMS[provider]}
        fields = {k: v for k, v in fields.items() if v.strip() or k not in OPTIONAL_FIELDS[provider]}

        def act() -> str:
            connected = ledger.connector.connect(
                org, provider, fields, scope=g.principal.scope,
                connection_id=str(submissions.derived_id("connection")),
            )
            flash(_("%(provider)s connected (connection %(connection)s).", provider=NAMES[provider],
                    connection=connected.connection_id[:8]), "ok")
            return url_for("pages.providers")

        return submissions.run_once(act)
    except LedgerError as exc:
        secrets = SECRET_FIELDS.get(provider, frozenset())
        kept = {k: v for k, v in request.form.items() if k in LABELS and k not in secrets}
        return _render(errors={provider: field_errors(exc)}, values=kept, status=status_of(exc))


@bp.post("/contact")
@signed_in("organizer")
def change_contact() -> BaseResponse | tuple[str, int]:
    """The same change as ``PUT /v1/organizers/{org}/contact``; an empty field
    removes the address."""
    ledger = current_ledger()
    org = g.principal.organizer_id or ""
    email = request.form.get("email", "").strip() or None
    try:
        def act() -> str:
            ledger.service.change_contact(org, email, scope=g.principal.scope)
            flash(_("Contact e-mail saved.") if email else _("Contact e-mail removed."), "ok")
            return url_for("pages.providers")

        return submissions.run_once(act)
    except LedgerError as exc:
        return _render(errors={"contact": field_errors(exc)}, values={"email": email or ""}, status=status_of(exc))
