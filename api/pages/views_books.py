"""The books' pages (R22): the trial balance with a "balanced" mark per
currency (finance and admin), one account's entries, and an organizer's
statement with a chart of its balance over time (organizers see their own).
Every page can be shown "as of" a date: the end of that UTC day.  Read-only:
no form here posts."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from flask import g, render_template, request
from flask_babel import format_date

from api.context import current_ledger
from api.pages.blueprint import bp, field_errors, status_of
from api.pages.charts import Bar, bar_chart
from api.pages.formatting import format_amount
from api.pages.i18n import _
from api.pages.session_auth import signed_in
from ledger.errors import LedgerError, ValidationFailed
from ledger.money import Money
from projections import books_query

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _as_of(value: str) -> str | None:
    """A date from the form as the end of that UTC day (``None``: now)."""
    if not value:
        return None
    if not _DATE.fullmatch(value):
        raise ValidationFailed({"as_of": [_("must be a date as YYYY-MM-DD")]})
    try:
        day = datetime.fromisoformat(value).date()
    except ValueError:
        raise ValidationFailed({"as_of": [_("%(value)s is not a calendar date", value=value)]}) from None
    return datetime(day.year, day.month, day.day, 23, 59, 59, 999999, tzinfo=UTC).isoformat()


def _filters(*names: str) -> dict[str, str]:
    found = {name: request.args.get(name, "").strip() for name in names}
    if "currency" in found:
        found["currency"] = found["currency"].upper()
    if g.principal.role == "organizer" and "organizer" in found:
        found["organizer"] = g.principal.organizer_id or ""
    return found


def _names(organizer_ids: set[str]) -> dict[str, str]:
    service = current_ledger().service
    names: dict[str, str] = {}
    for organizer_id in organizer_ids:
        try:
            names[organizer_id] = service.organizer(organizer_id, g.principal.scope).name
        except LedgerError:
            names[organizer_id] = organizer_id
    return names


@bp.get("/books")
@signed_in("finance", "admin")
def books_page() -> tuple[str, int]:
    """The trial balance: every account, totals per currency, each marked balanced."""
    filters = _filters("organizer", "currency", "as_of")
    try:
        trial = books_query.trial_balance(
            current_ledger().db, scope=g.principal.scope, organizer=filters["organizer"] or None,
            currency=filters["currency"] or None, as_of=_as_of(filters["as_of"]))
    except LedgerError as exc:
        return render_template("books.html", filters=filters, trial=None, names={},
                               errors=field_errors(exc)), status_of(exc)
    names = _names({a.organizer_id for a in trial.accounts})
    return render_template("books.html", filters=filters, trial=trial, names=names, errors={}), 200


@bp.get("/books/account")
@signed_in("organizer", "finance", "admin")
def book_account_page() -> tuple[str, int]:
    """One account's entries (of one organizer and currency), oldest first."""
    filters = _filters("organizer", "currency", "account", "as_of", "after")
    errors: dict[str, list[str]] = {}
    page = None
    try:
        if not filters["organizer"]:
            raise ValidationFailed({"organizer": [_("choose an organizer")]})
        if not filters["account"]:
            raise ValidationFailed({"account": [_("choose an account")]})
        page = books_query.journal(
            current_ledger().db, scope=g.principal.scope, organizer=filters["organizer"],
            account=filters["account"], currency=filters["currency"] or None, after=filters["after"] or None,
            limit=50, as_of=_as_of(filters["as_of"]))
    except LedgerError as exc:
        errors = field_errors(exc)
        status = status_of(exc)
    else:
        status = 200
    running: list[int] = []
    if page is not None:
        for item in page.items:
            change = 0
            for line in item["lines"]:
                if line["account"] == filters["account"]:
                    change += Money.parse(line.get("debit", "0"), item["currency"]).minor
                    change -= Money.parse(line.get("credit", "0"), item["currency"]).minor
            running.append(change)
    return render_template("book_account.html", filters=filters, page=page, changes=running, errors=errors), status


def balance_charts(statement: books_query.Statement) -> list[dict[str, Any]]:
    """One chart per currency: the closing balance of each day with a money fact."""
    found = []
    for figures in statement.currencies:
        code = figures.currency
        bars = [Bar(day.isoformat(), value, format_amount(Money(value, code).amount, code),
                    format_date(day, "d MMM"))  # "5 Nov", "5 lis"
                for day, value in figures.points]
        found.append({
            "currency": code,
            "svg": bar_chart(f"balance-chart-{code.lower()}", _("Balance over time in %(currency)s", currency=code),
                             bars, description=_("%(count)s bars, one per day with money moving; amounts in"
                                                 " %(currency)s.", count=len(bars), currency=code)),
        })
    return found


@bp.get("/books/statement")
@signed_in("organizer", "finance", "admin")
def statement_page() -> tuple[str, int]:
    """An organizer's statement (organizers: their own) with a chart of its
    balance over time; "as of" a date ends the statement that day."""
    filters = _filters("organizer", "from", "to", "currency", "as_of")
    statement = None
    errors: dict[str, list[str]] = {}
    status = 200
    try:
        if filters["as_of"]:
            _as_of(filters["as_of"])  # checked like the other pages
        end = filters["to"] or None
        if filters["as_of"] and (end is None or filters["as_of"] < end):
            end = filters["as_of"]
        if filters["organizer"]:
            statement = books_query.statement(
                current_ledger().db, filters["organizer"], scope=g.principal.scope,
                date_from=filters["from"] or None, date_to=end, currency=filters["currency"] or None)
    except LedgerError as exc:
        errors, status = field_errors(exc), status_of(exc)
    names = _names({statement.organizer_id}) if statement else {}
    return render_template("statement.html", filters=filters, statement=statement, names=names,
                           charts=balance_charts(statement) if statement else [], errors=errors), status
