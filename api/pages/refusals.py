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
    }
    return messages.get(code)


def field_message(text: str) -> str:
    """One message of a ``ValidationFailed`` (schemas, credential checks)."""
    return _("Fill in this field.") if text in _EMPTY else text


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
