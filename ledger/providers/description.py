"""What the ledger, the API and the pages know about one provider, declared on
its class (pretix's ``BasePaymentProvider`` way).

Adding a provider is one class (a gateway, or a description alone for a
provider without one) plus one line in :data:`ledger.providers.registry.PROVIDER_CLASSES`:
its identifier, label, credential fields, which of them are secret, the
countries and currencies it serves (R1-R3, R6) and its capabilities all live
here, so no other table has to learn about it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import ClassVar

#: R6: the currencies a ticket may be priced in, with their maximum price in
#: major units.  Each provider's ``currencies`` is a subset of these.
MAX_PRICE_MAJOR: dict[str, int] = {
    "USD": 2000, "EUR": 2000, "GBP": 2000, "PLN": 8000, "RUB": 200000,
    "AUD": 3000, "NZD": 3000, "CAD": 3000, "CZK": 46000, "DKK": 13000,
    "HKD": 20000, "ILS": 74000, "MXN": 40000, "NOK": 17000, "PHP": 106000,
    "SGD": 2800, "SEK": 18000, "CHF": 2000, "THB": 66000,
    "HUF": 700000, "BGN": 4000, "RON": 8000,
}  # fmt: skip

#: R6: currencies that only Stripe accepts.
STRIPE_ONLY = frozenset({"HUF", "BGN", "RON"})

#: Every R6 currency.
ALL_CURRENCIES = frozenset(MAX_PRICE_MAJOR)


@dataclass(frozen=True)
class CredentialField:
    """One field of the connection form and of ``POST /v1/organizers/{org}/providers``.

    ``secret`` fields are masked on the way out and never logged; the others
    (shop, POS, client and webhook ids) identify an account but grant nothing.
    """

    name: str
    label: str
    secret: bool = False
    #: An optional field may be left out (or blank); it is then not stored.
    required: bool = True


class ProviderDescription:
    """Class-level facts about one provider.  Subclasses set every attribute."""

    #: The identifier used in URLs, events and API bodies (``"stripe"`` ...).
    provider: ClassVar[str]
    #: The name people read.
    label: ClassVar[str]
    #: One sentence for the connection form.
    hint: ClassVar[str]
    #: Credential fields, in the order a form shows them (the API contract).
    credential_fields: ClassVar[tuple[CredentialField, ...]] = ()
    #: Organizer countries served (ISO 3166 alpha-2); ``None``: every country.
    countries: ClassVar[frozenset[str] | None] = None
    #: How the countries read in a sentence ("Poland").
    countries_label: ClassVar[str] = ""
    #: Ticket currencies this provider accepts (R3, R6).
    currencies: ClassVar[frozenset[str]] = ALL_CURRENCIES
    #: Opens a hosted checkout, sends signed notifications and can be polled.
    has_checkout: ClassVar[bool] = True
    #: Needs an explicit capture after the payer approves (PayPal), or the
    #: shop's confirmation of money held for it (PayU WAITING_FOR_CONFIRMATION).
    captures: ClassVar[bool] = False
    #: The smallest charge the provider accepts per currency, in major units as
    #: a decimal string, where it is above R6's minimum of one unit.  Each
    #: provider class names its source.
    minimum_charge: ClassVar[Mapping[str, str]] = MappingProxyType({})
    #: (shortest, longest) time a checkout may stay payable, counted from the
    #: moment its seat hold was taken, where the provider bounds it (Stripe's
    #: ``expires_at``); the seat is held exactly as long (R20).
    checkout_lifetime: ClassVar[tuple[timedelta, timedelta] | None] = None

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in cls.credential_fields)

    @classmethod
    def required_field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in cls.credential_fields if f.required)

    @classmethod
    def confirms_by_polling_only(cls, creds: Mapping[str, str]) -> bool:
        """True when a connection with these credentials receives no signed
        notifications, so its payments are confirmed only by the participant's
        return and by the reconciler polling its open checkouts -- at a steady
        short interval rather than as a fallback (R1: a Stripe key alone)."""
        return False

    @classmethod
    def secret_field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in cls.credential_fields if f.secret)
