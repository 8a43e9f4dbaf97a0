"""The pages in English and Polish (Flask-Babel).

Which language a page is in, first match wins:

1. the person's own choice, from the language switch in the header (stored
   in the page session cookie, kept across sign-in and sign-out);
2. the signed-in organizer's country: Polish for an organizer in Poland —
   the rule the participant e-mails use (``workers.email_templates.resolve_language``);
   organizers elsewhere, finance and admin go on to the browser's languages;
3. the browser's ``Accept-Language``;
4. English.

Catalogs: ``api/pages/translations/<lang>/LC_MESSAGES/messages.po`` is the
source; the compiled ``messages.mo`` beside it is committed, so a fresh clone
(and ``make test``) needs no build step.  ``tests/unit/test_page_translations.py``
fails when the committed ``.mo`` no longer matches its ``.po`` or a message
lacks its Polish translation.  To refresh after changing page texts::

    .venv/bin/pybabel extract -F api/pages/babel.cfg -k _ -k lazy_gettext -k lazy_pgettext:1c,2 \\
        --no-location --sort-output -o /tmp/messages.pot .
    .venv/bin/pybabel update -i /tmp/messages.pot -d api/pages/translations
    # translate the new entries in messages.po, then
    .venv/bin/pybabel compile -d api/pages/translations
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask, g, has_request_context, request, session
from flask_babel import Babel, get_locale, gettext, lazy_gettext, lazy_pgettext, ngettext

from projections import books

LANGUAGES = ("en", "pl")
#: The session key of the person's own choice.
CHOICE = "lang"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"

__all__ = ["LANGUAGES", "_", "account_label", "close_note_label", "configure", "current_language", "gettext",
           "lazy_gettext", "ngettext", "period_label", "role_name", "status_label"]


def _(text: str, **variables: Any) -> str:
    """``gettext`` with ``%(name)s`` variables (the extraction keyword)."""
    return gettext(text, **variables)


def role_name(role: str) -> str:
    """A role as people read it, in the page's language."""
    names = {"organizer": lazy_gettext("organizer"), "finance": lazy_gettext("finance"),
             "admin": lazy_gettext("admin")}
    return str(names.get(role, role))


#: Statuses as people read them (registrations and events).
_STATUSES = {
    "awaiting_payment": lazy_pgettext("status", "awaiting payment"), "paid": lazy_pgettext("status", "paid"),
    "confirmed": lazy_pgettext("status", "confirmed"), "rejected": lazy_pgettext("status", "rejected"),
    "cancelled": lazy_pgettext("status", "cancelled"), "refund_due": lazy_pgettext("status", "refund due"),
    "refunded": lazy_pgettext("status", "refunded"), "scheduled": lazy_pgettext("status", "scheduled"),
    "payment_failed": lazy_pgettext("status", "payment failed"),
    # Issue 18: a lost dispute or a reversal ended the ticket.
    "dispute_lost": lazy_pgettext("status", "dispute lost"),
}
_PERIODS = {"month": lazy_gettext("month"), "day": lazy_gettext("day"), "year": lazy_gettext("year")}


#: The books' accounts as people read them (projections.books.DESCRIPTIONS,
#: which stays English for the API and the CLI; the pages translate here).
_ACCOUNTS = {
    "refunds_paid": lazy_gettext("refunds paid out to payers"),
    "withdrawn": lazy_gettext("money taken back by providers (disputes, reversals)"),
    "ticket_revenue": lazy_gettext("ticket revenue (money paying for tickets held)"),
    "owed_back": lazy_gettext("money owed back to payers"),
    "fee_expense": lazy_gettext("service fee (the organizer's cost)"),
    "fee_payable": lazy_gettext("service fee owed to the platform"),
}


def account_label(account: str) -> str:
    """A books account (``projections.books``) in the page's language; English
    reads as ``projections.books.describe``."""
    if account.startswith(books.HELD):
        kind = account.removeprefix(books.HELD)
        return gettext("money held at %(kind)s", kind=kind)
    found = _ACCOUNTS.get(account)
    return str(found) if found is not None else books.describe(account)


#: Why the ledger itself closed a registration (issue 18; ``Registration._close``).
#: A rejection's or cancel's note is the organizer's own text and stays as written.
_CLOSE_NOTES = {
    "the payer won a dispute with the payment provider": lazy_gettext(
        "the payer won a dispute with the payment provider"),
    "the payment provider reversed the payment": lazy_gettext("the payment provider reversed the payment"),
}


def close_note_label(note: str) -> str:
    found = _CLOSE_NOTES.get(note)
    return str(found) if found is not None else note


def status_label(status: str) -> str:
    return str(_STATUSES.get(status, status.replace("_", " ")))


def period_label(period: str) -> str:
    return str(_PERIODS.get(period, period))


def _organizer_language() -> str | None:
    """Polish for an organizer in Poland (their country is kept in the
    session at sign-in, so no aggregate is loaded per page); anyone else
    gets the browser's choice."""
    country = session.get("country")
    if isinstance(country, str) and session.get("role") == "organizer" and country.upper() == "PL":
        return "pl"
    return None


def select_language() -> str:
    if not has_request_context():
        return "en"
    chosen = session.get(CHOICE)
    if chosen in LANGUAGES:
        return str(chosen)
    return _organizer_language() or request.accept_languages.best_match(LANGUAGES) or "en"


def current_language() -> str:
    """The language of this page ("en" / "pl"); English outside a request."""
    if not has_request_context():
        return "en"
    if "page_language" not in g:
        locale = get_locale()
        g.page_language = locale.language if locale is not None and locale.language in LANGUAGES else "en"
    language: str = g.page_language
    return language


def configure(app: Flask) -> None:
    """Flask-Babel for the whole app (the API itself sends no translated text)."""
    Babel(app, locale_selector=select_language, default_translation_directories=str(TRANSLATIONS),
          default_domain="messages")
