"""Offline payments (bank transfer, cash) that the organizer records by hand.

No gateway: nothing is called, nothing calls us.  Not Stripe, so the
Stripe-only currencies (R6) are refused for it.
"""

from __future__ import annotations

from ledger.providers.description import ALL_CURRENCIES, STRIPE_ONLY, ProviderDescription


class ManualPayments(ProviderDescription):
    provider = "manual"
    label = "Manual (offline)"
    hint = "Payments you receive yourself (bank transfer, cash) and record by hand. Not for HUF, BGN or RON."
    currencies = ALL_CURRENCIES - STRIPE_ONLY
    has_checkout = False
