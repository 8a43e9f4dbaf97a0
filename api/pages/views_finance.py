"""Finance pages: the fee report (R16) by month and currency with its chart and
CSV, and the event-log browser.  Read-only by construction: there is no form
here that posts.

Organizers see their own fee figures (as in ``GET /v1/reports/fees``);
finance and admin see every organizer's and may filter by one.  The event log
is finance's (and admin's) only, like ``GET /v1/ledger/events``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from flask import Response, g, render_template, request

from api.context import current_ledger
from api.pages import log_browser
from api.pages.blueprint import bp, field_errors, status_of
from api.pages.charts import Bar, bar_chart
from api.pages.formatting import format_amount
from api.pages.i18n import _, period_label
from api.pages.session_auth import signed_in
from ledger import event_log
from ledger.errors import LedgerError
from ledger.money import Money
from projections import fee_report as fees

#: More periods than this are not zero-filled (a daily report over years).
MAX_FILLED_PERIODS = 36


def _default_from(today: date) -> date:
    """The first day of the month eleven months ago: a year of months."""
    month = today.month - 11
    year = today.year + (month - 1) // 12
    return date(year, (month - 1) % 12 + 1, 1)


def _filters() -> dict[str, str]:
    today = datetime.now(UTC).date()
    args = request.args
    found = {
        "from": args.get("from", _default_from(today).isoformat()),
        "to": args.get("to", today.isoformat()),
        "currency": args.get("currency", "").strip().upper(),
        "period": args.get("period", "month"),
        "organizer": args.get("organizer", "").strip(),
    }
    if g.principal.role == "organizer":
        found["organizer"] = ""
    return found


def _query(filters: dict[str, str]) -> fees.FeeReport:
    return fees.query(
        current_ledger().db, scope=g.principal.scope, organizer=filters["organizer"] or None,
        currency=filters["currency"] or None, date_from=filters["from"] or None,
        date_to=filters["to"] or None, period=filters["period"] or "month",
    )


def _periods(start: date, end: date, period: str) -> list[str]:
    labels: list[str] = []
    cursor = start
    while cursor <= end and len(labels) <= MAX_FILLED_PERIODS:
        if period == "day":
            labels.append(cursor.isoformat())
            cursor = date.fromordinal(cursor.toordinal() + 1)
        elif period == "month":
            labels.append(f"{cursor.year:04d}-{cursor.month:02d}")
            cursor = date(cursor.year + cursor.month // 12, cursor.month % 12 + 1, 1)
        else:
            labels.append(f"{cursor.year:04d}")
            cursor = date(cursor.year + 1, 1, 1)
    return labels


def tick(label: str) -> str:
    """Short axis text: ``2026-11`` → ``Nov ’26``, ``2026-11-05`` → ``5 Nov``."""
    parts = label.split("-")
    if len(parts) == 2:
        return f"{date(int(parts[0]), int(parts[1]), 1):%b} ’{parts[0][2:]}"
    if len(parts) == 3:
        day = date.fromisoformat(label)
        return f"{day.day} {day:%b}"
    return label


def charts(report: fees.FeeReport) -> list[dict[str, Any]]:
    """One chart per currency (amounts in different currencies never share an
    axis): the service fee per period, summed over organizers in integer minor
    units — the same sums as the table's totals."""
    by_currency: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for item in report.items:
        by_currency[item.currency][item.period or ""] += item.fee_minor
    filters = report.filters
    labels: list[str] = []
    if filters.get("from") and filters.get("to"):
        labels = _periods(date.fromisoformat(str(filters["from"])), date.fromisoformat(str(filters["to"])),
                          str(filters.get("period") or "month"))
    found = []
    for currency in sorted(by_currency):
        sums = by_currency[currency]
        wanted = labels if labels and len(labels) <= MAX_FILLED_PERIODS else []
        periods = sorted(set(wanted) | set(sums))
        bars = [Bar(p, sums.get(p, 0), format_amount(Money(sums.get(p, 0), currency).amount, currency), tick(p))
                for p in periods]
        period = period_label(str(filters.get("period") or "month"))
        title = _("Service fee per %(period)s in %(currency)s", period=period, currency=currency)
        found.append({
            "currency": currency,
            "svg": bar_chart(f"fee-chart-{currency.lower()}", title, bars,
                             description=_("%(count)s bars, one per period; amounts in %(currency)s.",
                                           count=len(bars), currency=currency)),
        })
    return found


@bp.get("/reports/fees")
@signed_in("organizer", "finance", "admin")
def fee_report() -> tuple[str, int]:
    filters = _filters()
    service = current_ledger().service
    try:
        report = _query(filters)
    except LedgerError as exc:
        return render_template("fees.html", filters=filters, report=None, charts=[], names={},
                               errors=field_errors(exc)), status_of(exc)
    names: dict[str, str] = {}
    for organizer_id in {i.organizer_id for i in report.items if i.organizer_id}:
        try:
            names[organizer_id] = service.organizer(organizer_id, g.principal.scope).name
        except LedgerError:
            names[organizer_id] = organizer_id
    return render_template("fees.html", filters=filters, report=report, charts=charts(report), names=names,
                           errors={}), 200


@bp.get("/reports/fees.csv")
@signed_in("organizer", "finance", "admin")
def fee_report_csv() -> Response:
    """The same report as the page, as CSV (``fee_report.to_csv``: item lines
    then per-currency totals, told apart by the ``kind`` column)."""
    filters = _filters()
    report = _query(filters)
    name = "fees_{}_{}.csv".format(filters["from"] or "start", filters["to"] or "now")
    return Response(fees.to_csv(report), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/log")
@signed_in("finance", "admin")
def event_log_page() -> tuple[str, int]:
    args = request.args
    filters = {
        "type": args.get("type", ""), "organizer": args.get("organizer", ""),
        "aggregate": args.get("aggregate", ""), "limit": args.get("limit", "50"),
    }
    try:
        flt = log_browser.LogFilter.parse([filters["type"]], filters["organizer"], filters["aggregate"])
        page = log_browser.browse(current_ledger(), flt, after=args.get("after"), limit=filters["limit"])
    except LedgerError as exc:
        return render_template("log.html", filters=filters, page=None, types=sorted(event_log.TYPE_NAMES),
                               errors=field_errors(exc), after=args.get("after")), status_of(exc)
    return render_template("log.html", filters=filters, page=page, types=sorted(event_log.TYPE_NAMES),
                           errors={}, after=args.get("after")), 200
