"""Reading fields of a provider's body, whatever shape it arrives in.

A notification is foreign input even when its signature is valid: a provider
changes a field's type between API versions, a test tool sends a hand-made
body, an account is misconfigured.  Whatever the shape, the webhook answers
a 4xx (:class:`~ledger.errors.NotificationMalformed`, ``malformed_notification``)
and never a 500, which the provider would retry forever.

The decision on amounts (R21, documented in docs/providers.md):

* an amount that is not an integer of minor units (Stripe, PayU) or a decimal
  string (PayPal) -- ``"49.00"`` where Stripe documents ``4900``, a missing
  or non-numeric PayU ``totalAmount`` -- is malformed: 400;
* an amount beyond 2**53 minor units cannot even be kept as the fact it is
  (R21), so it is malformed too: 400;
* a well-formed amount above R21's bound is kept as a fact and refused by the
  domain (outcome ``refused_amount_above_limit``): the webhook answers 200, the
  provider stops retrying, the organizer sees the refused fact, and nothing
  reaches the event log.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from ledger.errors import NotificationMalformed
from ledger.money import MAX_SAFE_MINOR, MINOR_UNIT_DIGITS, Money
from ledger.providers.base import Notification

log = logging.getLogger(__name__)

JSON = dict[str, Any]

#: The longest id or reference kept from a notification (provider ids are < 100).
MAX_TEXT = 255
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_CURRENCY = re.compile("[A-Z]{3}")
_DECIMAL = re.compile(r"-?[0-9]{1,16}(\.[0-9]{1,3})?")


def obj(value: Any, what: str) -> JSON:
    """An object field; ``{}`` when absent or null."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise NotificationMalformed(f"{what} must be an object, not {type(value).__name__}")
    return value


def array(value: Any, what: str) -> list[Any]:
    """An array field; ``[]`` when absent or null."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise NotificationMalformed(f"{what} must be an array, not {type(value).__name__}")
    return value


def objects(value: Any, what: str) -> list[JSON]:
    """An array of objects; ``[]`` when absent or null."""
    return [obj(item, f"{what}[{i}]") for i, item in enumerate(array(value, what))]


def currency(value: Any, what: str) -> str:
    """An ISO 4217 code (upper-cased: Stripe sends ``"usd"``)."""
    code = value.upper() if isinstance(value, str) else None
    if code is None or not _CURRENCY.fullmatch(code):
        raise NotificationMalformed(f"{what} must be a three-letter currency code")
    return code


def minor_units(value: Any, code: str, what: str, *, digit_strings: bool = False) -> Money:
    """An amount in minor units: a JSON integer, or -- where the provider
    documents it (PayU) -- a string of ASCII digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        minor = value
    elif digit_strings and isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18:
        minor = int(value)
    else:
        raise NotificationMalformed(f"{what} must be an integer amount in minor units")
    if abs(minor) > MAX_SAFE_MINOR:
        raise NotificationMalformed(f"{what} is beyond any amount the ledger can keep")
    return Money(minor, code)


def decimal_amount(value: Any, code: str, what: str) -> Money:
    """An amount as a decimal string in major units (PayPal's ``value``),
    parsed exactly (R8).  Bounded by :data:`_DECIMAL` to 16 integer digits, so
    below 2**53 minor units whatever the currency."""
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
        raise NotificationMalformed(f"{what} must be a decimal string such as '49.00'")
    digits = MINOR_UNIT_DIGITS.get(code, 2)
    try:
        scaled = Decimal(value).scaleb(digits)
    except InvalidOperation:
        raise NotificationMalformed(f"{what} must be a decimal string such as '49.00'") from None
    if scaled != scaled.to_integral_value():
        raise NotificationMalformed(f"{what} has more than {digits} decimal places")
    return minor_units(int(scaled), code, what)


def checked(notifications: Iterable[Notification]) -> list[Notification]:
    """The notifications, once every text they carry can be stored: no NUL,
    no lone surrogate, at most :data:`MAX_TEXT` characters."""
    found = list(notifications)
    for n in found:
        for name in ("provider_event_id", "registration_id", "reference", "raw_type"):
            value = getattr(n, name)
            if value is not None and (len(value) > MAX_TEXT or _UNSTORABLE.search(value)):
                raise NotificationMalformed(f"{name} is not text the ledger can keep")
    return found


def mapped(provider: str, build: Callable[[], Iterable[Notification]]) -> list[Notification]:
    """``build()``'s notifications, :func:`checked`.  The field readers above
    name what is wrong; this is the net under them at the trust boundary: any
    other shape the mapping did not expect (a string where an object was, a
    missing key) is malformed too, never a 500."""
    try:
        return checked(build())
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        log.warning("%s notification of an unexpected shape: %s", provider, type(exc).__name__, exc_info=exc)
        raise NotificationMalformed(f"{provider} notification has an unexpected shape") from None
