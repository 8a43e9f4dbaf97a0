"""Decisions on one participant — Confirm, Reject with a reason, Resend the
confirmation e-mail, record a payment received by hand
or a refund made at the provider, saying whether it ends access — and a
registration's full history.

The buttons appear in two places (each row of the Paid event tab, and the
registration's own page); a refusal is shown where the button was pressed,
next to the field it concerns.  The registration page renders from the
aggregate, so its forms also carry the version they saw (the ``If-Match`` of
the API): acting on a stale page is refused instead of guessed.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import flash, g, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from api.context import current_ledger
from api.pages import log_browser, submissions
from api.pages.blueprint import bp, field_errors, reason_from, status_of
from api.pages.event_list import wait_for_views
from api.pages.i18n import _
from api.pages.session_auth import ACTING_ROLES, safe_next, signed_in
from api.pages.views_events import READ_ROLES, render_paid_tab
from api.schemas import PaymentSchema, RefundSchema
from ledger.errors import LedgerError
from ledger.money import Money
from ledger.providers.registry import PROVIDERS

#: Fields a refused form is shown again with (what the organizer typed).
FORM_FIELDS = ("reason", "amount", "provider", "method", "reference", "access")
#: The refund form's access choice → ``ends_access``.
ACCESS_CHOICES: dict[str, bool | None] = {"auto": None, "keep": False, "end": True}


def render_registration(
    registration_id: str, *, errors: dict[str, dict[str, list[str]]] | None = None,
    open_form: str | None = None, values: dict[str, str] | None = None, status: int = 200,
) -> tuple[str, int]:
    ledger = current_ledger()
    registration = ledger.service.registration(registration_id, g.principal.scope)
    paid_event = ledger.service.event(registration.event_id)
    events = log_browser.history(ledger, str(registration.id))
    return render_template(
        "registration.html", registration=registration, reg=registration.as_dict(), event=paid_event,
        history=events, errors=errors or {}, open_form=open_form, values=values or {},
        here=url_for("pages.registration", registration_id=registration.id), providers=PROVIDERS,
    ), status


@bp.get("/registrations/<registration_id>")
@signed_in(*READ_ROLES)
def registration(registration_id: str) -> tuple[str, int]:
    return render_registration(registration_id)


def render_money_form(
    registration_id: str, kind: str, *, errors: dict[str, dict[str, list[str]]] | None = None,
    values: dict[str, str] | None = None, back: str | None = None, status: int = 200,
) -> tuple[str, int]:
    """One money form on its own page (reached from who paid): the
    participant's figures, the form, and the way back to the list."""
    ledger = current_ledger()
    registration = ledger.service.registration(registration_id, g.principal.scope)
    paid_event = ledger.service.event(registration.event_id)
    back = back or url_for("pages.event", event_id=paid_event.id)
    return render_template(
        "money_form.html", kind=kind, registration=registration, reg=registration.as_dict(), event=paid_event,
        errors=errors or {}, values=values or {}, back=back, providers=PROVIDERS,
    ), status


@bp.get("/registrations/<registration_id>/payments/new")
@signed_in(*ACTING_ROLES)
def new_payment(registration_id: str) -> tuple[str, int]:
    """Record a payment seen outside the providers, from who paid."""
    return render_money_form(registration_id, "payment", back=safe_next(request.args.get("next")))


@bp.get("/registrations/<registration_id>/refunds/new")
@signed_in(*ACTING_ROLES)
def new_refund(registration_id: str) -> tuple[str, int]:
    """Record a refund (part or all of what was paid), from who paid."""
    return render_money_form(registration_id, "refund", back=safe_next(request.args.get("next")))


def _decide(registration_id: str, kind: str, command: Callable[[int | None], object], done: str) -> (
    BaseResponse | tuple[str, int]
):
    """Run one decision once per form submission; on refusal re-render the page
    the form came from with the message next to its field."""
    ledger = current_ledger()
    raw_version = request.form.get("version", "")
    version = int(raw_version) if raw_version.isascii() and raw_version.isdigit() and len(raw_version) <= 9 else None
    back = safe_next(request.form.get("next")) or url_for("pages.registration", registration_id=registration_id)
    try:
        def act() -> str:
            command(version)
            flash(done, "ok")
            wait_for_views(ledger)
            return back

        return submissions.run_once(act)
    except (LedgerError, ValidationError) as exc:
        form_id = f"{kind}-{registration_id}"
        errors = {form_id: field_errors(exc)}
        values = {f"{form_id}:{name}": request.form.get(name, "") for name in FORM_FIELDS}
        if request.form.get("view") in ("payment", "refund"):
            return render_money_form(registration_id, str(request.form.get("view")), errors=errors, values=values,
                                     back=safe_next(request.form.get("next")), status=status_of(exc))
        if request.form.get("view") == "event":
            found = ledger.service.registration(registration_id, g.principal.scope)
            return render_paid_tab(found.event_id, errors=errors, open_form=form_id, values=values,
                                   status=status_of(exc))
        return render_registration(registration_id, errors=errors, open_form=form_id, values=values,
                                   status=status_of(exc))


@bp.post("/registrations/<registration_id>/confirm")
@signed_in(*ACTING_ROLES)
def confirm(registration_id: str) -> BaseResponse | tuple[str, int]:
    service = current_ledger().service

    def command(version: int | None) -> object:
        return service.confirm(registration_id, scope=g.principal.scope, expected_version=version)

    return _decide(registration_id, "confirm", command, _("Participant confirmed."))


@bp.post("/registrations/<registration_id>/reject")
@signed_in(*ACTING_ROLES)
def reject(registration_id: str) -> BaseResponse | tuple[str, int]:
    ledger = current_ledger()

    def command(version: int | None) -> object:
        reason = reason_from(request.form.get("reason", ""), to_everyone=False)
        rejected = ledger.service.reject(
            registration_id, reason=reason, scope=g.principal.scope, expected_version=version
        )
        ledger.intake.closed_early([registration_id])  # its open checkout ends too
        return rejected

    return _decide(registration_id, "reject", command,
                   _("Participant rejected and notified. Anything they paid is now refund due."))


@bp.post("/registrations/<registration_id>/resend")
@signed_in(*ACTING_ROLES)
def resend(registration_id: str) -> BaseResponse | tuple[str, int]:
    service = current_ledger().service

    def command(version: int | None) -> object:
        return service.request_resend(registration_id, scope=g.principal.scope, expected_version=version)

    return _decide(registration_id, "resend", command, _("The confirmation e-mail will be sent again."))


def _amount(currency: str) -> Money:
    """The amount typed on a money form, in the registration's currency."""
    return Money.parse(request.form.get("amount", "").strip(), currency, field="amount")


@bp.post("/registrations/<registration_id>/payments")
@signed_in(*ACTING_ROLES)
def record_payment(registration_id: str) -> BaseResponse | tuple[str, int]:
    """Money received outside the providers' notifications: recorded
    whatever is due; what pays for no ticket is owed back."""
    service = current_ledger().service

    def command(version: int | None) -> object:
        registration = service.registration(registration_id, g.principal.scope)
        amount = _amount(registration.currency)
        body = PaymentSchema().load({
            "amount": {"amount": amount.amount, "currency": amount.currency},
            "provider": request.form.get("provider") or "manual",
            "method": request.form.get("method", "").strip() or None,
            "reference": request.form.get("reference", "").strip(),
        })
        return service.record_payment(
            registration_id, amount=amount, provider=body["provider"], method=body["method"],
            reference=body["reference"], scope=g.principal.scope, expected_version=version,
        )

    return _decide(registration_id, "payment", command,
                   _("Payment recorded. Whatever pays for no ticket is shown as owed back."))


@bp.post("/registrations/<registration_id>/refunds")
@signed_in(*ACTING_ROLES)
def record_refund(registration_id: str) -> BaseResponse | tuple[str, int]:
    """A refund made at the provider; the organizer says whether the
    participant keeps the ticket."""
    service = current_ledger().service

    def command(version: int | None) -> object:
        registration = service.registration(registration_id, g.principal.scope)
        amount = _amount(registration.currency)
        choice = request.form.get("access", "auto")
        body = RefundSchema().load({
            "amount": {"amount": amount.amount, "currency": amount.currency},
            "reference": request.form.get("reference", "").strip(),
            "ends_access": ACCESS_CHOICES.get(choice),
        })
        return service.record_refund(
            registration_id, amount=amount, reference=body["reference"], ends_access=body["ends_access"],
            scope=g.principal.scope, expected_version=version,
        )

    return _decide(registration_id, "refund", command,
                   _("Refund recorded. It was taken from what is owed back first, then from the ticket."))
