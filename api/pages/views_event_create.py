"""Create a paid event (the help article's "Paid access" form, R5–R7), with
the provider connected inline when the organizer has none yet (R1–R4).

What the form says about prices comes from the same tables the ledger checks
(``ledger.pricing``, each provider's description), so the page cannot promise
a price or a currency the ledger would refuse.  Everything the event needs is
checked *before* anything is written: a refused price or date never leaves a
fresh provider connection behind.  The connection and the event then get ids
derived from the form's once-only key, so a double click or a retry after a
crash finds what the first submission created instead of creating it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import available_timezones

from flask import flash, g, render_template, request, url_for
from marshmallow import ValidationError
from werkzeug.wrappers import Response as BaseResponse

from api.context import current_ledger
from api.pages import submissions
from api.pages.blueprint import bp, field_errors, status_of
from api.pages.event_list import wait_for_views
from api.pages.formatting import money, parse_local
from api.pages.i18n import _, gettext
from api.pages.session_auth import signed_in
from api.pages.views_providers import LABELS, NAMES, OPTIONAL_FIELDS, SECRET_FIELDS, provider_hint
from api.schemas import EventCreateSchema, price_from
from ledger.domain.organizer import Organizer
from ledger.errors import (
    AmountAboveLimit,
    AmountInvalid,
    CurrencyNotSupported,
    CurrencyNotSupportedByProvider,
    LedgerError,
    PriceAboveLimit,
    PriceBelowMinimum,
    PriceBelowProviderMinimum,
    ProviderNotAvailableInCountry,
    ValidationFailed,
)
from ledger.money import Money
from ledger.pricing import MAX_PRICE_MAJOR, check_price, check_provider_country, minimum_price
from ledger.providers import registry
from ledger.providers.description import ALL_CURRENCIES

#: Session rows the form offers (no JavaScript to add rows); the API takes more.
SESSION_ROWS = 10
#: Form fields kept when a refused form is shown again (never a secret).
KEPT = ("title", "description", "timezone", "permanent", "amount", "currency", "provider")
#: Ledger field names → the form field that shows the message.
FIELD_OF = {"price": "amount", "price.amount": "amount", "price.currency": "currency", "starts_at": "session-1",
            "sessions": "session-1"}
#: Common zones first in the suggestion list; every IANA zone is accepted.
COMMON_ZONES = ("Europe/Warsaw", "Europe/London", "Europe/Berlin", "America/New_York", "UTC")


@dataclass(frozen=True)
class CurrencyLine:
    """One currency as the form shows it: its maximum (R6) and who accepts it."""

    currency: str
    maximum: str
    providers: str


def currency_lines() -> list[CurrencyLine]:
    lines = []
    for currency in sorted(MAX_PRICE_MAJOR):
        accepting = [cls.label for cls in registry.PROVIDER_CLASSES if currency in cls.currencies]
        lines.append(CurrencyLine(currency, money(Money.of(MAX_PRICE_MAJOR[currency], currency)),
                                  ", ".join(accepting)))
    return lines


def currency_notes() -> list[str]:
    """Plain sentences about currencies only some providers accept, derived
    from the providers' descriptions (R3, R6): never a hard-coded list."""
    notes = []
    by_providers: dict[tuple[str, ...], list[str]] = {}
    for currency in sorted(ALL_CURRENCIES):
        accepting = tuple(cls.label for cls in registry.PROVIDER_CLASSES
                          if cls.has_checkout and currency in cls.currencies)
        by_providers.setdefault(accepting, []).append(currency)
    for accepting, currencies in by_providers.items():
        if len(accepting) == 1:
            notes.append(_("%(currencies)s can be paid only through %(provider)s.",
                           currencies=", ".join(currencies), provider=accepting[0]))
    for cls in registry.PROVIDER_CLASSES:
        if cls.has_checkout and len(cls.currencies) == 1:
            only = next(iter(cls.currencies))
            notes.append(_("%(provider)s accepts %(currency)s only.", provider=cls.label, currency=only))
    return notes


def provider_minimums() -> list[str]:
    """The providers' own minimum charges above one unit (shown next to the price)."""
    found = []
    for cls in registry.PROVIDER_CLASSES:
        amounts = [money(minimum_price(c, cls.provider)) for c in sorted(cls.minimum_charge) if c in cls.currencies]
        if amounts:
            found.append(_("%(provider)s takes no less than %(amounts)s.", provider=cls.label,
                           amounts=", ".join(amounts)))
    return found


def _default_zone(organizer: Organizer) -> str:
    return "Europe/Warsaw" if organizer.country == "PL" else "UTC"


def _render(organizer: Organizer, *, errors: dict[str, list[str]] | None = None,
            values: dict[str, Any] | None = None, status: int = 200) -> tuple[str, int]:
    connected = {str(c["provider"]) for c in organizer.connections.values()}
    defaults = {"timezone": _default_zone(organizer), "currency": "PLN" if organizer.country == "PL" else "USD",
                "provider": sorted(connected)[0] if connected else "stripe"}
    usable = [cls for cls in registry.PROVIDER_CLASSES
              if cls.countries is None or organizer.country in cls.countries]
    return render_template(
        "event_create.html", organizer=organizer, errors=errors or {}, values={**defaults, **(values or {})},
        providers=usable, connected=connected, labels=LABELS, names=NAMES, secret_fields=SECRET_FIELDS,
        optional_fields=OPTIONAL_FIELDS,
        hint=provider_hint, currencies=currency_lines(), notes=currency_notes(), minimums=provider_minimums(),
        zones=[*COMMON_ZONES, *sorted(available_timezones() - set(COMMON_ZONES))],
        session_rows=range(1, SESSION_ROWS + 1), known_fields=_known_fields(),
    ), status


def _known_fields() -> set[str]:
    """Fields that show their own message (the rest go to the top of the form)."""
    names = {"title", "description", "timezone", "amount", "currency", "provider"}
    names |= {f"session-{n}" for n in range(1, SESSION_ROWS + 1)}
    names |= {f"connect-{cls.provider}-{f}" for cls in registry.PROVIDER_CLASSES for f in cls.field_names()}
    return names


def _organizer() -> Organizer:
    return current_ledger().service.organizer(g.principal.organizer_id or "", g.principal.scope)


@bp.get("/events/new")
@signed_in("organizer")
def new_event() -> tuple[str, int]:
    return _render(_organizer())


def _sessions(form: dict[str, str], timezone: str, now: datetime) -> list[datetime]:
    """The typed sessions (wall times in the event's zone), at least one, none
    in the past: checked here too, before an inline connection is made, so a
    mistyped year never leaves a connection behind with no event."""
    found = []
    for n in range(1, SESSION_ROWS + 1):
        text = form.get(f"session-{n}", "").strip()
        if text:
            moment = parse_local(text, timezone, field=f"session-{n}")
            if moment <= now:
                raise ValidationFailed({f"session-{n}": [_("This date is in the past.")]})
            found.append(moment)
    if not found:
        raise ValidationFailed({"session-1": [_("Enter the date and time of the first session.")]})
    return found


def _checked_form(form: dict[str, str], organizer: Organizer) -> tuple[dict[str, Any], list[datetime], Money]:
    """Every check that needs no provider call, all at once, so the person sees
    every mistake in one go: title and zone (the API's schema), the sessions,
    the price against the currency, the provider and the country."""
    errors: dict[str, list[str]] = {}
    provider = form.get("provider", "")
    if provider not in registry.PROVIDERS:
        errors["provider"] = [_("Choose how participants pay.")]
    if not form.get("title", "").strip():
        errors["title"] = [_("Enter a title.")]
    if not form.get("amount", "").strip():
        errors["amount"] = [_("Enter the ticket price.")]
    zone = form.get("timezone", "").strip() or _default_zone(organizer)
    body: dict[str, Any] = {}
    try:
        body = EventCreateSchema().load({
            "title": form.get("title", "").strip(), "description": form.get("description", ""),
            "timezone": zone, "permanent": form.get("permanent") == "yes",
            "price": {"amount": form.get("amount", "").strip(), "currency": form.get("currency", "")},
            "provider": provider if provider in registry.PROVIDERS else "manual",
        })
    except ValidationError as exc:
        for name, messages in _plain(exc.messages).items():
            errors.setdefault(name, messages)
    sessions: list[datetime] = []
    try:
        sessions = _sessions(form, zone if "timezone" not in errors else "UTC", current_ledger().service.clock())
    except ValidationFailed as exc:
        errors.update(exc.errors() or {})
    price = None
    if not errors.keys() & {"amount", "provider", "currency", "price.amount", "price.currency"}:
        try:
            raw = {"amount": form.get("amount", "").strip(), "currency": form.get("currency", "")}
            price = _checked_price(raw, provider, organizer.country)
        except ValidationFailed as exc:
            errors.update(exc.errors() or {})
    if errors or price is None or not body:
        raise ValidationFailed(errors or {"amount": [_("Enter the ticket price.")]})
    return body, sessions, price


def _connection_fields(provider: str) -> dict[str, str]:
    """The inline connection's fields as the connector takes them (a blank
    optional field is left out, as an API caller would leave it out)."""
    cls = registry.describe(provider)
    fields = {name: request.form.get(f"connect-{provider}-{name}", "") for name in cls.field_names()}
    return {k: v for k, v in fields.items() if v.strip() or k not in OPTIONAL_FIELDS[provider]}


@bp.post("/events/new")
@signed_in("organizer")
def create_event() -> BaseResponse | tuple[str, int]:
    ledger = current_ledger()
    organizer = _organizer()
    form = {k: v for k, v in request.form.items()}
    provider = form.get("provider", "")
    try:
        body, sessions, price = _checked_form(form, organizer)
        zone = body["timezone"]
        connect = organizer.connection_for(provider) is None
        fields = _connection_fields(provider) if connect else {}

        def act() -> str:
            if connect:
                ledger.connector.connect(
                    str(organizer.id), provider, fields, scope=g.principal.scope,
                    connection_id=str(submissions.derived_id("connection")),
                )
            paid_event = ledger.service.create_event(
                organizer_id=str(organizer.id), title=body["title"], description=body["description"],
                sessions=sessions, timezone=zone, permanent=body["permanent"], price=price,
                provider=provider, scope=g.principal.scope, new_id=submissions.derived_id("event"),
            )
            flash(_("Event created. Its price, %(price)s, is fixed from now on.", price=money(price)), "ok")
            wait_for_views(ledger)
            return url_for("pages.event", event_id=paid_event.id)

        return submissions.run_once(act)
    except (LedgerError, ValidationError) as exc:
        errors = _on_form(field_errors(exc), provider, connecting=organizer.connection_for(provider) is None)
        kept = {k: form.get(k, "") for k in KEPT}
        kept.update({k: v for k, v in form.items() if k.startswith("session-")})
        secrets = {f"connect-{provider}-{s}" for s in SECRET_FIELDS.get(provider, frozenset())}
        kept.update({k: v for k, v in form.items() if k.startswith("connect-") and k not in secrets})
        return _render(organizer, errors=errors, values=kept, status=status_of(exc))


def _checked_price(raw: dict[str, str], provider: str, country: str) -> Money:
    """The price, checked by the ledger's own rules (``ledger.pricing``); a
    refusal is said again in the page's language with the figures that apply."""
    currency = raw["currency"]
    label = registry.describe(provider).label
    try:
        price = price_from(raw)
        check_provider_country(provider, country)
        check_price(price, provider)
        return price
    except (PriceAboveLimit, AmountAboveLimit):
        maximum = money(Money.of(MAX_PRICE_MAJOR[currency], currency))
        raise ValidationFailed({"amount": [_("The highest ticket price in %(currency)s is %(maximum)s.",
                                             currency=currency, maximum=maximum)]}) from None
    except (PriceBelowMinimum, PriceBelowProviderMinimum):
        minimum = money(minimum_price(currency, provider))
        raise ValidationFailed({"amount": [_("The lowest ticket price through %(provider)s in %(currency)s "
                                             "is %(minimum)s.", provider=label, currency=currency,
                                             minimum=minimum)]}) from None
    except AmountInvalid:
        raise ValidationFailed({"amount": [_("Enter the price as a number, such as 49.00 "
                                             "(at most two decimal places).")]}) from None
    except CurrencyNotSupported:
        raise ValidationFailed({"currency": [_("Choose a currency from the list.")]}) from None
    except CurrencyNotSupportedByProvider:
        raise ValidationFailed({"currency": [_("%(provider)s does not accept %(currency)s: choose another "
                                               "currency or another provider.", provider=label,
                                               currency=currency)]}) from None
    except ProviderNotAvailableInCountry:
        countries = registry.describe(provider).countries_label
        raise ValidationFailed({"provider": [_("%(provider)s is only for organizers in %(countries)s.",
                                               provider=label, countries=gettext(countries))]}) from None


def _plain(messages: Any) -> dict[str, list[str]]:
    """marshmallow's nested messages flattened to ``price.amount`` style names."""
    flat: dict[str, list[str]] = {}
    if not isinstance(messages, dict):
        return {"_form": [str(messages)]}
    for key, value in messages.items():
        if isinstance(value, dict):
            for inner, text in _plain(value).items():
                flat[f"{key}.{inner}"] = text
        else:
            flat[str(key)] = [str(m) for m in (value if isinstance(value, list) else [value])]
    return flat


def _on_form(errors: dict[str, list[str]], provider: str, *, connecting: bool) -> dict[str, list[str]]:
    """Each message next to the field that shows it: the ledger's names
    (``price``, credential fields of the inline connection) mapped to the form's."""
    credential_names = set(registry.describe(provider).field_names()) if provider in registry.PROVIDERS else set()
    placed: dict[str, list[str]] = {}
    for name, messages in errors.items():
        if connecting and name in credential_names:
            target = f"connect-{provider}-{name}"
        else:
            target = FIELD_OF.get(name, name)
        placed.setdefault(target, []).extend(messages)
    return placed
