"""The ``/app`` blueprint: what every page shares (CSRF check, security
headers, template helpers, readable error pages).

Errors on pages are pages: a refusal from the ledger or an HTTP error raised by
a page view is rendered as HTML here, while the rest of the app keeps answering
problem+json.  Blueprint handlers take precedence over the app's for errors
raised inside this blueprint, so the API's behaviour does not change.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, render_template, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from api.pages import refusals, session_auth, submissions
from api.pages.i18n import _, account_label, close_note_label, current_language, period_label, role_name, status_label
from ledger.errors import LedgerError, PreconditionFailed

bp = Blueprint(
    "pages", __name__, url_prefix="/app", template_folder="templates",
    static_folder="static", static_url_path="/static",
)

#: No scripts at all, styles only from our own sheet, forms only to us, never
#: framed (clickjacking on the Confirm / Cancel buttons).
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


@bp.before_request
def _csrf() -> None:
    session_auth.check_csrf()


@bp.after_request
def _headers(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    if request.endpoint != "pages.static":
        # Pages show money and personal data: never kept in shared caches.
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.context_processor
def _helpers() -> dict[str, Any]:
    return {
        "csrf_token": session_auth.csrf_token,
        "new_form_key": submissions.new_key,
        "principal": getattr(g, "principal", None),
        "can_act": session_auth.can_act(),
        "provider_name": provider_name,
        "status_label": status_label,
        "account_label": account_label,
        "close_note_label": close_note_label,
        "period_label": period_label,
        "role_name": role_name,
        "page_language": current_language(),
    }


def provider_name(provider: str) -> str:
    """A provider as people read it ("Stripe", "Manual (offline)"), translated."""
    from api.pages.i18n import gettext
    from ledger.providers import registry

    label = next((cls.label for cls in registry.PROVIDER_CLASSES if cls.provider == provider), provider)
    return gettext(label)


def field_errors(exc: LedgerError | ValidationError) -> dict[str, list[str]]:
    """Messages by form field; ``_form`` for those that belong to no field."""
    if isinstance(exc, ValidationError):
        messages = exc.messages
        if isinstance(messages, dict):
            return {str(k): [refusals.field_message(str(m)) if current_language() != "en" else str(m)
                             for m in (v if isinstance(v, list) else [v])] for k, v in messages.items()}
        return {"_form": [str(m) for m in messages]}
    if isinstance(exc, PreconditionFailed):  # the form's hidden version is stale
        return {"_form": [_("Someone changed this since the page was opened. Check the current values and try again.")]}
    found = exc.errors()
    return refusals.translate({k: list(v) for k, v in found.items()} if found else {"_form": [exc.detail]}, exc)


def status_of(exc: LedgerError | ValidationError) -> int:
    return exc.status if isinstance(exc, LedgerError) else 422


@bp.errorhandler(LedgerError)
def _ledger_error(exc: LedgerError) -> tuple[str, int]:
    message = (refusals.by_code(exc) if current_language() != "en" else None) or exc.detail
    return render_template("error.html", title=refusals.title(exc), message=message, code=exc.code), exc.status


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[str, int]:
    status = exc.code or 500
    titles = {400: _("Bad request"), 403: _("Not allowed"), 404: _("Not found"), 405: _("Not allowed")}
    message = exc.description or exc.name
    if status == 404:
        message = _("There is nothing at this address, or it belongs to another organizer.")
    if status == 403:
        message = _("Your role cannot open this page. Finance is read-only; organizers see their own data.")
    return render_template("error.html", title=titles.get(status, exc.name), message=message,
                           code=str(status)), status


def reason_from(text: str, *, to_everyone: bool) -> str:
    """A reason checked by the API's own ``ReasonSchema`` (same rules), with a
    plain-language message for the common mistake of leaving it empty."""
    from api.schemas import ReasonSchema
    from ledger.errors import ValidationFailed

    text = (text or "").strip()
    if not text:
        message = (_("Enter a reason: it is recorded in the ledger and sent to every participant.") if to_everyone
                   else _("Enter a reason: it is recorded in the ledger and sent to the participant."))
        raise ValidationFailed({"reason": [message]})
    reason: str = ReasonSchema().load({"reason": text})["reason"]
    return reason
