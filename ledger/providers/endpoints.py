"""Where provider calls go, from configuration (``LEDGER_*_API_BASE``); tests
point them at the local contract servers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
    #: R2, the platform's own PayPal REST app (``LEDGER_PAYPAL_CLIENT_ID``,
    #: ``_CLIENT_SECRET``, ``_WEBHOOK_ID``): with it an organizer connects only
    #: their PayPal identity and orders name them as payee.  Empty: unset.
    paypal_client_id: str = ""
    paypal_client_secret: str = field(default="", repr=False)
    paypal_webhook_id: str = ""

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
            paypal_client_id=env.get("LEDGER_PAYPAL_CLIENT_ID") or "",
            paypal_client_secret=env.get("LEDGER_PAYPAL_CLIENT_SECRET") or "",
            paypal_webhook_id=env.get("LEDGER_PAYPAL_WEBHOOK_ID") or "",
        )
