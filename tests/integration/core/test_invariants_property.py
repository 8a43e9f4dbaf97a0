"""Hypothesis: random command sequences never break the ledger's invariants.

Invariants checked after every step, on state re-read from PostgreSQL:
* R9  sold seats never exceed the capacity at the time of sale (plan only grows here);
* R15 refunded never exceeds paid; R17 paid = refunded + refund_due + ticket money;
* R18 the fee still charged is 5% half-up of the ticket money, reversals never exceed fees;
* status is one of API.md's values and consistent with the amounts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledger.container import Ledger
from ledger.errors import LedgerError
from ledger.fee_policy import DEFAULT_FEE_POLICY
from ledger.money import Money

STATUSES = {"awaiting_payment", "paid", "confirmed", "rejected", "cancelled", "refund_due", "refunded"}
PRICE = Money.parse("12.34", "EUR")


def make_machine(ledger: Ledger) -> type[RuleBasedStateMachine]:
    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            service = ledger.service
            self.capacity = 3
            org = service.register_organizer(name="O", country="DE", plan_size=self.capacity)
            self.org_id = str(org.id)
            service.connect_provider(self.org_id, provider="manual", masked={}, store_secrets=lambda cid: None)
            self.event_id = str(service.create_event(
                organizer_id=self.org_id, title="T", description="", sessions=[datetime(2038, 1, 1, tzinfo=UTC)],
                timezone="UTC", permanent=False, price=PRICE, provider="manual").id)
            self.registrations: list[str] = []
            self.refs = 0

        def _ref(self) -> str:
            self.refs += 1
            return f"ref-{self.refs}"

        @rule()
        def register(self) -> None:
            try:
                reg = ledger.service.register_participant(self.event_id, name="P", email="p@x.org", fields={})
                self.registrations.append(str(reg.id))
            except LedgerError:
                pass

        @precondition(lambda self: self.registrations)
        @rule(i=st.integers(0, 50), action=st.sampled_from(["pay", "confirm", "reject", "resend", "fail"]))
        def act(self, i: int, action: str) -> None:
            rid = self.registrations[i % len(self.registrations)]
            s = ledger.service
            try:
                if action == "pay":
                    s.record_payment(rid, amount=PRICE, provider="manual", reference=self._ref())
                elif action == "confirm":
                    s.confirm(rid, scope=_any())
                elif action == "reject":
                    s.reject(rid, reason="r", scope=_any())
                elif action == "resend":
                    s.request_resend(rid, scope=_any())
                else:
                    s.record_payment_failure(rid, reason="card_declined", reference=self._ref())
            except LedgerError:
                pass

        @precondition(lambda self: self.registrations)
        @rule(i=st.integers(0, 50), cents=st.integers(1, 2000))
        def refund(self, i: int, cents: int) -> None:
            rid = self.registrations[i % len(self.registrations)]
            try:
                ledger.service.record_refund(rid, amount=Money(cents, "EUR"), reference=self._ref())
            except LedgerError:
                pass

        @rule()
        def cancel(self) -> None:
            try:
                ledger.service.cancel_event(self.event_id, reason="x", scope=_any())
            except LedgerError:
                pass

        @invariant()
        def books_balance(self) -> None:
            event = ledger.service.event(self.event_id)
            assert len(event.sold) <= self.capacity
            for rid in self.registrations:
                reg = ledger.service.registration(rid)
                assert reg.status in STATUSES
                assert 0 <= reg.refunded_minor <= reg.paid_minor
                assert reg.paid_minor == reg.refunded_minor + reg.refund_due_minor + reg.ticket_minor
                assert 0 <= reg.ticket_minor <= reg.price_minor and reg.refund_due_minor >= 0
                assert reg.fee_minor - reg.fee_reversed_minor == DEFAULT_FEE_POLICY.fee_on(reg.ticket_minor)
                assert 0 <= reg.fee_reversed_minor <= reg.fee_minor
                if reg.status in ("paid", "confirmed"):
                    assert rid in event.sold
                if reg.status == "refunded":
                    assert reg.refunded_minor == reg.paid_minor > 0

    return LedgerMachine


def _any() -> Any:
    from ledger.scope import ANYONE

    return ANYONE


def test_random_command_sequences_keep_the_invariants(shared_ledger: Ledger) -> None:
    machine = make_machine(shared_ledger)
    machine.TestCase.settings = settings(
        max_examples=25, stateful_step_count=25, deadline=None, database=None,
        suppress_health_check=list(HealthCheck),
    )
    machine.TestCase().runTest()
