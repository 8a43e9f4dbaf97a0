"""One organizer with a manual connection and one paid event: the smallest
ledger a core test of registrations needs (no provider server)."""

from __future__ import annotations

from datetime import UTC, datetime

from ledger.container import Ledger
from ledger.money import Money


def manual_event(ledger: Ledger, plan: int = 10) -> tuple[str, str]:
    """``(organizer_id, event_id)``: a 10.00 USD event on 1 December 2037,
    paid by hand, for an organizer whose plan holds ``plan`` seats (R9)."""
    service = ledger.service
    org = service.register_organizer(name="O", country="US", plan_size=plan)
    service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
    event = service.create_event(
        organizer_id=str(org.id), title="T", description="", sessions=[datetime(2037, 12, 1, tzinfo=UTC)],
        timezone="UTC", permanent=False, price=Money.parse("10.00", "USD"), provider="manual",
    )
    return str(org.id), str(event.id)
