"""The ledger's refusals said in the page's language.

The ledger explains a refusal in English (``LedgerError.detail``, also the
API's problem+json ``detail``) and names it with a stable ``code``.  English
pages show that detail as it is; Polish pages show the message for the code
from the catalog, with the figures that apply, so a Polish organizer never
reads an English sentence next to a field.  A code without a message here
keeps the ledger's detail (better an English sentence than none).
"""

from __future__ import annotations

import re

from api.pages.formatting import money
from api.pages.i18n import _, current_language, gettext
from ledger.errors import LedgerError
from ledger.money import Money
from ledger.pricing import MAX_PRICE_MAJOR

#: "49.00 PLN" inside a ledger detail: the figure a refusal is about.
_AMOUNT = re.compile(r"(-?\d+(?:\.\d+)?) ([A-Z]{3})\b")
#: Field messages the ledger and its schemas use for an empty field.
_EMPTY = {"is required", "Missing data for required field.", "Shorter than minimum length 1.",
          "Field may not be null."}


def _figure(detail: str) -> str | None:
    found = _AMOUNT.search(detail)
    if found is None:
        return None
    try:
        return money(Money.parse(found.group(1), found.group(2)))
    except LedgerError:
        return None


def by_code(exc: LedgerError) -> str | None:
    """The message for ``exc.code`` in the page's language; None: keep the detail."""
    figure = _figure(exc.detail)
    code = exc.code
    if code == "refund_exceeds_paid":
        return (_("This is more than can be refunded: at most %(amount)s.", amount=figure) if figure
                else _("This is more than was paid and not yet refunded."))
    with_figure = {  # the figure the refusal is about, when the detail names one
        "price_below_minimum": lambda: _("The price is below the minimum: at least %(amount)s.", amount=figure),
        "price_below_provider_minimum": lambda: _(
            "The payment provider accepts no charge below %(amount)s in this currency.", amount=figure),
        "price_above_limit": lambda: _("The price is above the maximum: at most %(amount)s.", amount=figure),
        "amount_mismatch": lambda: _("This amount is too large: at most %(amount)s.", amount=figure),
    }
    if figure and code in with_figure:
        return with_figure[code]()
    messages = {
        "provider_credentials_invalid": _("The provider refused these credentials. Check them and try again."),
        "provider_unavailable": _("The payment provider cannot be reached right now. Try again in a moment."),
        "capacity_exhausted": _("No tickets are left."),
        "event_cancelled": _("The event is cancelled."),
        "invalid_state": _("This is not possible in the current state of the event or the participant."),
        "currency_mismatch": _("The currency does not match the event's currency."),
        "payment_reference_conflict": _("A payment with this reference is already recorded with another amount."),
        "refund_reference_conflict": _("A refund with this reference is already recorded with another amount."),
        "amount_invalid": _("Enter the amount as a number, such as 49.00 (at most two decimal places)."),
        "amount_above_limit": _("This amount is larger than this currency allows."),
        "provider_not_connected": _("Connect this provider first."),
        "not_found": _("Not found."),
        # Event creation and rescheduling (R3, R5, R6, R13, issue 18's provider minimums).
        "starts_at_in_past": _("This start time has already passed: choose a time in the future."),
        "currency_not_supported": _("This currency is not accepted. Accepted currencies: %(codes)s.",
                                    codes=", ".join(sorted(MAX_PRICE_MAJOR))),
        "currency_not_supported_by_provider": _("This payment provider does not accept this currency."),
        "price_below_minimum": _("The price is below the minimum."),
        "price_below_provider_minimum": _("The price is below the payment provider's minimum charge in this currency."),
        "price_above_limit": _("The price is above this currency's maximum."),
        "price_immutable": _("The price of an event can never change."),
        "provider_not_available_in_country": _("This payment provider is not available in the organizer's country."),
        "amount_mismatch": _("The amount must be more than zero."),
        "version_conflict": _(
            "Someone changed this since the page was opened. Check the current values and try again."),
        # The books, the fee report and lists.
        "invalid_date_range": _("The start date is after the end date."),
        "invalid_cursor": _("This list link is no longer valid: open the list again."),
        "forbidden": _("You are not allowed to do this."),
        "rate_limited": _("Too many attempts. Wait a moment and try again."),
    }
    return messages.get(code)


#: "'2026-02-30' is not a calendar date" (the fee report's and the books' date fields).
_NOT_A_DATE = re.compile(r"'?(.*?)'? is not a calendar date")


def field_message(text: str) -> str:
    """One message of a ``ValidationFailed`` (schemas, credential checks, the
    reports' and the books' filters)."""
    if text in _EMPTY:
        return _("Fill in this field.")
    known = {
        "must be a date as YYYY-MM-DD": _("must be a date as YYYY-MM-DD"),
        "must be an organizer id": _("must be an organizer id"),
        "is not an account of the chart": _("is not an account of the books"),
        "must be an e-mail address (ASCII, at most 254 characters)": _(
            "must be an e-mail address (ASCII, at most 254 characters)"),
    }
    if text in known:
        return known[text]
    found = _NOT_A_DATE.fullmatch(text)
    if found:
        return _("%(value)s is not a calendar date", value=found.group(1))
    return text


def translate(errors: dict[str, list[str]], exc: LedgerError) -> dict[str, list[str]]:
    """``errors`` (field → messages, from ``exc``) in the page's language."""
    if current_language() == "en":
        return errors
    if exc.code == "validation_failed":
        return {field: [field_message(m) for m in messages] for field, messages in errors.items()}
    message = by_code(exc)
    return {field: [message] for field in errors} if message else errors


def title(exc: LedgerError) -> str:
    """The error page's title: the ledger's English title, or a plain one."""
    return exc.title if current_language() == "en" else gettext("Request refused")
