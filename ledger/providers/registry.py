"""The providers this ledger knows, as one explicit list.

Each entry is a class carrying its own description (identifier, fields,
countries, currencies, capabilities -- see :mod:`ledger.providers.description`);
the ones with a hosted checkout are also the gateway that talks to it.  A typo
or a missing module fails at import, loudly: nothing here is optional.
"""

from __future__ import annotations

from ledger.providers.base import Credentials, PaymentGateway, ProviderNotSupported
from ledger.providers.credentials import mask as _mask
from ledger.providers.credentials import require_fields as _require_fields
from ledger.providers.description import ProviderDescription
from ledger.providers.endpoints import ProviderEndpoints
from ledger.providers.manual import ManualPayments
from ledger.providers.paypal_gateway import PaypalGateway
from ledger.providers.payu_gateway import PayuGateway
from ledger.providers.stripe_gateway import StripeGateway

#: Every provider an organizer can connect (R1-R3) plus offline payments, in
#: the order forms list them.
PROVIDER_CLASSES: tuple[type[ProviderDescription], ...] = (
    StripeGateway,
    PayuGateway,
    PaypalGateway,
    ManualPayments,
)

_BY_NAME: dict[str, type[ProviderDescription]] = {cls.provider: cls for cls in PROVIDER_CLASSES}

#: Provider identifiers, as accepted by the API.
PROVIDERS: tuple[str, ...] = tuple(_BY_NAME)

#: Providers with a hosted checkout, signed notifications and status polling.
GATEWAY_PROVIDERS: tuple[str, ...] = tuple(cls.provider for cls in PROVIDER_CLASSES if cls.has_checkout)


def describe(provider: str) -> type[ProviderDescription]:
    """The class describing ``provider``; unknown names are refused."""
    try:
        return _BY_NAME[provider]
    except KeyError:
        raise ProviderNotSupported(f"no payment provider {provider!r}") from None


def gateway_for(provider: str, endpoints: ProviderEndpoints) -> PaymentGateway:
    """A gateway for ``provider`` calling the hosts in ``endpoints``.

    Gateways are cheap and stateless; callers may cache one per provider.
    """
    cls = _BY_NAME.get(provider)
    if cls is None or not cls.has_checkout:
        raise ProviderNotSupported(f"no payment gateway for provider {provider!r}")
    gateway: PaymentGateway = cls.from_endpoints(endpoints)  # type: ignore[attr-defined]
    return gateway


def required_fields(provider: str) -> tuple[str, ...]:
    """The credential fields ``provider`` takes (API.md), in form order; the
    optional ones (Stripe's webhook secret, PayPal's two ways, R1/R2) included."""
    cls = _BY_NAME.get(provider)
    if cls is None or not cls.has_checkout:
        raise ProviderNotSupported(f"no payment gateway for provider {provider!r}")
    return cls.field_names()


def require_fields(provider: str, creds: Credentials) -> None:
    """Refuse missing or blank fields before any network call, per field."""
    required_fields(provider)
    _require_fields(describe(provider), creds)


def mask(provider: str, creds: Credentials) -> dict[str, str]:
    """Credentials safe to show (see :func:`ledger.providers.credentials.mask`)."""
    required_fields(provider)
    return _mask(describe(provider), creds)


__all__ = [
    "GATEWAY_PROVIDERS",
    "PROVIDERS",
    "PROVIDER_CLASSES",
    "ProviderEndpoints",
    "describe",
    "gateway_for",
    "mask",
    "require_fields",
    "required_fields",
]
