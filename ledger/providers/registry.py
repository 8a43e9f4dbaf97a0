"""Which gateway serves which provider, where it calls, and which credential
fields it needs.

The composition root builds one :class:`ProviderEndpoints` from configuration
(``LEDGER_STRIPE_API_BASE`` ...) and asks :func:`gateway_for` for each
provider; tests point the endpoints at the local contract servers.  Field
names are the API.md contract for ``POST /v1/organizers/{org}/providers``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ledger.errors import ValidationFailed
from ledger.providers.base import Credentials, PaymentGateway, ProviderNotSupported

#: Credential fields per provider, in the order a form shows them.
FIELDS: dict[str, tuple[str, ...]] = {
    "stripe": ("api_key", "webhook_secret"),
    "payu": ("shop_id", "pos_id", "client_id", "client_secret", "second_key"),
    "paypal": ("client_id", "client_secret", "webhook_id"),
}

#: Fields that are secrets: masked on the way out, never logged.  The others
#: (shop, POS, client and webhook ids) identify an account but grant nothing.
SECRET_FIELDS: dict[str, frozenset[str]] = {
    "stripe": frozenset({"api_key", "webhook_secret"}),
    "payu": frozenset({"client_secret", "second_key"}),
    "paypal": frozenset({"client_secret"}),
}

#: Key prefixes worth showing: they tell test from live and secret from
#: restricted keys without revealing anything.
_SAFE_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_")


@dataclass(frozen=True)
class ProviderEndpoints:
    """Where provider calls go, and how long one HTTP call may take.

    Defaults are the providers' production hosts; sandboxes are
    ``https://secure.snd.payu.com`` and ``https://api-m.sandbox.paypal.com``
    (Stripe uses test-mode keys on the same host).
    """

    stripe_api_base: str = "https://api.stripe.com"
    payu_api_base: str = "https://secure.payu.com"
    paypal_api_base: str = "https://api-m.paypal.com"
    #: Seconds per HTTP request (connect and read).  Short on purpose: a
    #: participant is waiting, and an outage must surface as a 503 quickly.
    timeout_seconds: float = 10.0
    #: Retries inside the Stripe SDK (0: the caller owns retry policy).
    stripe_max_network_retries: int = 0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ProviderEndpoints:
        """Read ``LEDGER_{STRIPE,PAYU,PAYPAL}_API_BASE`` (ARCHITECTURE.md) and
        the optional ``LEDGER_PROVIDER_TIMEOUT_SECONDS``; unset means default."""
        default = cls()
        timeout = env.get("LEDGER_PROVIDER_TIMEOUT_SECONDS")
        return cls(
            stripe_api_base=env.get("LEDGER_STRIPE_API_BASE") or default.stripe_api_base,
            payu_api_base=env.get("LEDGER_PAYU_API_BASE") or default.payu_api_base,
            paypal_api_base=env.get("LEDGER_PAYPAL_API_BASE") or default.paypal_api_base,
            timeout_seconds=float(timeout) if timeout else default.timeout_seconds,
        )


def gateway_for(provider: str, settings: ProviderEndpoints) -> PaymentGateway:
    """A gateway for ``provider`` calling the hosts in ``settings``.

    Gateways are cheap and stateless; callers may cache one per provider.
    """
    # Imported here so that importing the registry (e.g. for ``mask``) does
    # not load the Stripe SDK.
    if provider == "stripe":
        from ledger.providers.stripe_gateway import StripeGateway

        return StripeGateway(
            settings.stripe_api_base,
            timeout=settings.timeout_seconds,
            max_network_retries=settings.stripe_max_network_retries,
        )
    if provider == "payu":
        from ledger.providers.payu_gateway import PayuGateway

        return PayuGateway(settings.payu_api_base, timeout=settings.timeout_seconds)
    if provider == "paypal":
        from ledger.providers.paypal_gateway import PaypalGateway

        return PaypalGateway(settings.paypal_api_base, timeout=settings.timeout_seconds)
    raise ProviderNotSupported(f"no payment gateway for provider {provider!r}")


def required_fields(provider: str) -> tuple[str, ...]:
    """The credential fields ``provider`` needs (API.md), in form order."""
    try:
        return FIELDS[provider]
    except KeyError:
        raise ProviderNotSupported(f"no payment gateway for provider {provider!r}") from None


def require_fields(provider: str, creds: Credentials) -> None:
    """Refuse missing or blank fields before any network call, per field."""
    errors = {
        name: ["is required"]
        for name in required_fields(provider)
        if not isinstance(creds.get(name), str) or not creds[name].strip()
    }
    if errors:
        raise ValidationFailed(errors)


def mask(provider: str, creds: Credentials) -> dict[str, str]:
    """Credentials safe to show: secrets as ``sk_test_…abcd``, ids in full.

    At most the last four characters of a secret are shown, and only when it
    is long enough (>= 16) that four characters give nothing away.  Fields
    that the provider does not use are dropped rather than echoed.
    """
    secrets = SECRET_FIELDS.get(provider, frozenset())
    shown: dict[str, str] = {}
    for name in required_fields(provider):
        value = creds.get(name)
        if value is None:
            continue
        shown[name] = _mask_secret(value) if name in secrets else value
    return shown


def _mask_secret(value: str) -> str:
    prefix = next((p for p in _SAFE_PREFIXES if value.startswith(p)), "")
    tail = value[-4:] if len(value) >= 16 else ""
    return f"{prefix}…{tail}"
