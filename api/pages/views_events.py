"""The organizer's events: the list, the event page with its **Paid event**
tab (who paid, R14) and its **Schedule** tab (reschedule R13, cancel R15 — each
behind a confirmation step, because both notify every participant)."""

from __future__ import annotations

from typing import Any

from flask import Response, flash, g, render_template, request, stream_with_context, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from api.context import current_ledger
from api.pages import submissions
from api.pages.blueprint import bp, field_errors, reason_from, status_of
from api.pages.event_list import events_page, wait_for_views
from api.pages.formatting import input_value, local_time, parse_local, short_id
from api.pages.i18n import _
from api.pages.session_auth import ACTING_ROLES, signed_in
from api.schemas import RescheduleSchema
from ledger.domain.paid_event import PaidEvent
from ledger.errors import LedgerError
from projections import who_paid_query

READ_ROLES = ("organizer", "finance", "admin")
PAGE_SIZE = 50


def _version(raw: str | None) -> int | None:
    """The aggregate version the form was rendered from (its ``If-Match``)."""
    return int(raw) if raw and raw.isascii() and raw.isdigit() and len(raw) <= 9 else None


@bp.get("/events")
@signed_in(*READ_ROLES)
def events() -> str:
    ledger = current_ledger()
    lines, following = events_page(ledger, g.principal.scope, after=request.args.get("after"))
    return render_template("events.html", lines=lines, next=following,
                           first_page=not request.args.get("after"))


def _event(event_id: str) -> tuple[PaidEvent, dict[str, Any]]:
    """The event and its header figures: seats and money --
    the same numbers as ``GET /v1/events/{id}``."""
    ledger = current_ledger()
    paid_event = ledger.service.event(event_id, g.principal.scope)
    summary = paid_event.summary(ledger.service.capacity_of(paid_event), ledger.service.clock())
    summary["hold_seconds"] = int(ledger.service.seat_hold_for(paid_event).total_seconds())
    summary["money"] = who_paid_query.event_money(ledger, str(paid_event.id), paid_event.currency)
    return paid_event, summary


def render_paid_tab(
    event_id: str, *, errors: dict[str, dict[str, list[str]]] | None = None, open_form: str | None = None,
    values: dict[str, str] | None = None, status: int = 200,
) -> tuple[str, int]:
    """The Paid event tab; also re-rendered by participant actions to show a
    refusal next to the row and field it concerns (``errors[form][field]``)."""
    ledger = current_ledger()
    paid_event, summary = _event(event_id)
    wanted = request.args.get("status") or None
    page = who_paid_query.page(ledger, str(paid_event.id), scope=g.principal.scope, status=wanted,
                               after=request.args.get("after"), limit=PAGE_SIZE)
    html = render_template(
        "event_paid.html", event=paid_event, summary=summary, tab="paid", page=page,
        statuses=who_paid_query.STATUSES, wanted=wanted, errors=errors or {}, open_form=open_form,
        values=values or {}, first_page=not request.args.get("after"),
        here=url_for("pages.event", event_id=paid_event.id, status=wanted),  # None is left out
    )
    return html, status


@bp.get("/events/<event_id>")
@signed_in(*READ_ROLES)
def event(event_id: str) -> tuple[str, int]:
    return render_paid_tab(event_id)


@bp.get("/events/<event_id>/participants.csv")
@signed_in(*READ_ROLES)
def participants_csv(event_id: str) -> Response:
    """Who paid as CSV (``who_paid_query.csv_lines``: streamed, formula-safe)."""
    lines = who_paid_query.csv_lines(current_ledger(), event_id, scope=g.principal.scope,
                                     status=request.args.get("status") or None)
    return Response(stream_with_context(lines), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="participants_{short_id(event_id)}.csv"'})


def _schedule(
    event_id: str, *, errors: dict[str, list[str]] | None = None, values: dict[str, str] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    paid_event, summary = _event(event_id)
    first = paid_event.sessions[0]
    defaults = {"session_id": first["id"], "starts_at": input_value(first["starts_at"], paid_event.timezone)}
    return render_template(
        "event_schedule.html", event=paid_event, summary=summary, tab="schedule", errors=errors or {},
        values={**defaults, **(values or {})},
    ), status


@bp.get("/events/<event_id>/schedule")
@signed_in(*READ_ROLES)
def event_schedule(event_id: str) -> tuple[str, int]:
    return _schedule(event_id)


@bp.post("/events/<event_id>/reschedule")
@signed_in(*ACTING_ROLES)
def reschedule(event_id: str) -> BaseResponse | tuple[str, int]:
    """Step 1 (no ``confirm``): check the new time and show what will happen.
    Step 2 (``confirm=yes``): move the session and notify everyone."""
    ledger = current_ledger()
    values = {k: request.form.get(k, "") for k in ("session_id", "starts_at", "form_key", "version")}
    try:
        paid_event, summary = _event(event_id)
        starts_at = parse_local(values["starts_at"], paid_event.timezone)
        body = RescheduleSchema().load({"starts_at": starts_at.isoformat(),
                                        "session_id": values["session_id"] or None})
        session_id = body["session_id"]
        session = next((s for s in paid_event.sessions if s["id"] == session_id), paid_event.sessions[0])
        if request.form.get("confirm") != "yes":
            return render_template(
                "reschedule_confirm.html", event=paid_event, summary=summary, session=session,
                new_starts_at=starts_at, values=values,
            ), 200

        def act() -> str:
            ledger.service.reschedule(
                str(paid_event.id), starts_at=body["starts_at"], session_id=session_id,
                scope=g.principal.scope, expected_version=_version(values["version"]),
            )
            flash(_("Rescheduled to %(when)s. Every participant is being notified.",
                    when=local_time(starts_at, paid_event.timezone)), "ok")
            wait_for_views(ledger)
            return url_for("pages.event_schedule", event_id=paid_event.id)

        return submissions.run_once(act)
    except (LedgerError, ValidationError) as exc:
        return _schedule(event_id, errors=field_errors(exc), values=values, status=status_of(exc))


@bp.route("/events/<event_id>/cancel", methods=["GET", "POST"])
@signed_in(*ACTING_ROLES)
def cancel_event(event_id: str) -> BaseResponse | tuple[str, int]:
    """GET is the confirmation step (what will happen, a reason); POST cancels:
    every open registration closes in the same transaction, paid ones become
    ``refund_due`` — refunds are never automatic."""
    ledger = current_ledger()
    paid_event, summary = _event(event_id)
    if request.method == "GET":
        return render_template("cancel_confirm.html", event=paid_event, summary=summary, errors={},
                               values={"form_key": submissions.new_key(), "version": str(paid_event.version)}), 200
    values = {k: request.form.get(k, "") for k in ("reason", "form_key", "version")}
    try:
        reason = reason_from(values["reason"], to_everyone=True)

        def act() -> str:
            cancelled = ledger.service.cancel_event(
                str(paid_event.id), reason=reason, scope=g.principal.scope,
                expected_version=_version(values["version"]),
            )
            ledger.intake.closed_early(cancelled.registrations)  # open checkouts end too
            flash(_("The event is cancelled. Participants are being notified; "
                    "paid participants are now refund due."), "ok")
            wait_for_views(ledger)
            return url_for("pages.event", event_id=paid_event.id)

        return submissions.run_once(act)
    except (LedgerError, ValidationError) as exc:
        return render_template("cancel_confirm.html", event=paid_event, summary=summary,
                               errors=field_errors(exc), values=values), status_of(exc)
