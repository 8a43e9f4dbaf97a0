"""How the pages show money and time to people, and read times back from forms.

Money: people read "$49.00" or "1 234,50 zł", not "49.00 USD", in the page's
language (Babel, CLDR).  The digits come from ``Money.amount`` (an exact
decimal string, R8), so formatting only moves separators and symbols around —
it never goes through a float and can never show a different amount than the
ledger holds.

Time: an event's times are shown, and typed, in the *event's* time zone (the
organizer's audience is there), never in the server's or the browser's.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_datetime
from babel.numbers import format_currency

from api.pages.i18n import _, current_language
from ledger.errors import ValidationFailed
from ledger.money import Money

_NBSP = "\u00a0"
_MINUS = "\u2212"
#: The Babel locale of each page language.
_LOCALES = {"en": "en", "pl": "pl_PL"}
#: An ISO code written straight before the digits ("PLN8.00"): CLDR spaces it.
_GLUED_CODE = re.compile(r"^([A-Z]{3})(?=\d)")


def format_amount(amount: str, currency: str, language: str | None = None) -> str:
    """A decimal string in major units (``"1234.50"``) as the page's language
    writes it: ``$49.00``, ``PLN 49.00`` in English; ``49,00 zł``, ``49,00 USD``
    in Polish.  Babel gets a ``Decimal`` built from the exact string and is told
    not to round (``decimal_quantization=False``, no currency digit table), so
    every digit the ledger holds is shown."""
    locale = _LOCALES.get(language or current_language(), "en")
    text = format_currency(Decimal(amount), currency, locale=locale, currency_digits=False,
                           decimal_quantization=False)
    negative = text.startswith("-")
    text = _GLUED_CODE.sub(lambda m: m.group(1) + _NBSP, text.lstrip("-"))
    return (_MINUS if negative else "") + text


def money(value: Money | dict[str, str] | None, currency: str | None = None) -> str:
    """Jinja filter: ``Money``, an API money object or minor units (with ``currency``)."""
    if value is None:
        return "—"
    if isinstance(value, Money):
        return format_amount(value.amount, value.currency)
    if isinstance(value, dict):
        return format_amount(value["amount"], value["currency"])
    if isinstance(value, int) and currency:
        return format_amount(Money(value, currency).amount, currency)
    raise TypeError(f"cannot format {value!r} as money")


def zone(name: str | None) -> ZoneInfo:
    """The event's zone; UTC when it is unknown (never an error on a read page)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _aware(value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local_time(value: str | datetime | None, tz: str | None = "UTC", *, with_zone: bool = True) -> str:
    """``Tue 1 Dec 2026, 18:00 CET`` (``wt. 1 gru 2026, 18:00 CET`` in Polish)
    in ``tz`` (the event's zone)."""
    if value is None or value == "":
        return "—"
    moment = _aware(value).astimezone(zone(tz))
    text = format_datetime(moment, "EEE d MMM y, HH:mm", tzinfo=moment.tzinfo,
                           locale=_LOCALES.get(current_language(), "en"))
    return f"{text} {moment:%Z}" if with_zone else text


def iso_local(value: str | datetime, tz: str | None) -> str:
    """Machine-readable local time for ``<time datetime=…>``."""
    return _aware(value).astimezone(zone(tz)).isoformat(timespec="minutes")


def input_value(value: str | datetime, tz: str | None) -> str:
    """The value of an ``<input type="datetime-local">`` in the event's zone."""
    return _aware(value).astimezone(zone(tz)).strftime("%Y-%m-%dT%H:%M")


def parse_local(text: str, tz: str, *, field: str = "starts_at") -> datetime:
    """A ``datetime-local`` value typed in the event's zone, as an aware time.

    A wall time that falls in a daylight-saving gap does not exist: it is
    refused rather than silently moved.  A repeated (autumn) wall time takes its
    first occurrence (``fold=0``), the one people mean by default.
    """
    text = (text or "").strip()
    if not text:
        raise ValidationFailed({field: [_("Enter the date and time.")]})
    try:
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed({field: [_("Use the form YYYY-MM-DDTHH:MM.")]}) from None
    if naive.tzinfo is not None:
        naive = naive.replace(tzinfo=None)
    place = zone(tz)
    local = naive.replace(tzinfo=place)
    try:
        round_trip = local.astimezone(UTC).astimezone(place).replace(tzinfo=None)
    except OverflowError:  # e.g. 9999-12-31T23:59 west of UTC: beyond datetime.max
        raise ValidationFailed({field: [_("Enter a date between the years 1 and 9999.")]}) from None
    if round_trip != naive:
        raise ValidationFailed({field: [_("%(time)s does not exist in %(zone)s (daylight-saving change).",
                                          time=text, zone=tz)]})
    return local


def short_id(value: Any) -> str:
    """The first block of an id: enough to tell rows apart on screen."""
    return str(value).split("-")[0]


def pretty_json(value: Any) -> str:
    """Event data for people: indented, keys sorted, non-ASCII names as typed
    (the template escapes it as HTML)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def person(value: str | None) -> str:
    """A participant's name or e-mail address, or that it was erased (R24)."""
    return _("(erased)") if value is None else value


FILTERS = {
    "person": person,
    "money": money,
    "local_time": local_time,
    "iso_local": iso_local,
    "input_value": input_value,
    "short_id": short_id,
    "pretty_json": pretty_json,
}
