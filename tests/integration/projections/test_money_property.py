"""Issue 12's property: for random histories -- payments, duplicates, part
payments, late payments (after a hold lapsed, after the cancel, after a
rejection), rejections, confirmations, cancels, partial and full refunds with
and without ``ends_access``, and a payment delivered twice (``pay_repeat``,
which must change nothing) -- across organizers and currencies:

* for every event and every organizer x currency,
  ``gross - refunded - refund_due`` = the money that pays for tickets held
  (R17), as an independent model of the rules says;
* the fee still charged is 5% half-up of that ticket money, per registration:
  the payment that makes a ticket paid charges it, a goodwill refund gives it
  back in proportion, a lost ticket gives all of it back (R18);
* the fee report's totals are the sums of its rows, and every figure is the
  same after ``ledger rebuild`` from position 0.

The model below restates docs/money.md in a few lines; it reads from the
ledger only what R9 decides (whether a payment found a seat).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.container import Ledger
from ledger.errors import LedgerError
from ledger.fee_policy import DEFAULT_FEE_POLICY
from ledger.money import Money
from ledger.scope import ANYONE
from projections import fee_report, who_paid_query
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from tests.integration.projections.history import snapshot

#: (organizer index, price): two organizers share USD, so organizer x currency matters.
EVENTS = ((0, Money(1234, "USD")), (0, Money(1010, "PLN")), (1, Money(4999, "USD")), (1, Money(101, "EUR")))
#: Weighted: money moves more often than registrations come and events close.
ACTIONS = ("register", "pay", "pay", "pay", "pay_twice", "pay_twice", "pay_part", "pay_repeat", "confirm", "reject",
           "cancel", "refund_part", "refund_part", "refund_part", "refund_all", "lapse", "project")
STEP = st.tuples(st.sampled_from(ACTIONS), st.integers(0, 30), st.integers(1, 99),
                 st.sampled_from([None, True, False]))


@dataclass
class Expected:
    """One registration as the rules say it must be (docs/money.md)."""

    price: int
    open: bool = True
    paid: int = 0
    refunded: int = 0
    ticket: int = 0

    def pays(self, amount: int, *, found_seat: bool) -> None:
        if self.open and not found_seat and self.paid < self.price:
            self.open = False  # no seat left (R9): everything is owed back
        if self.open and self.paid < self.price <= self.paid + amount:
            self.ticket = min(self.paid + amount - self.refunded, self.price)
        self.paid += amount

    def refunds(self, amount: int, ends_access: bool | None) -> None:
        owed = self.paid - self.refunded - self.ticket
        self.refunded += amount
        if ends_access is None:
            ends_access = self.refunded == self.paid
        if ends_access:
            self.open = False
        self.ticket = 0 if not self.open else self.ticket - max(0, amount - owed)

    def closes(self) -> None:
        self.open, self.ticket = False, 0

    @property
    def owed(self) -> int:
        return self.paid - self.refunded - self.ticket


def _setup(ledger: Ledger, plan: int) -> tuple[list[str], list[str]]:
    service = ledger.service
    orgs = []
    for n in range(2):
        org = service.register_organizer(name=f"O{n}", country="PL", plan_size=plan)
        service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda _: None)
        orgs.append(str(org.id))
    events = [
        str(service.create_event(organizer_id=orgs[o], title=f"E{i}", description="",
                                 sessions=[datetime(2038, 1, 1, tzinfo=UTC)], timezone="UTC", permanent=False,
                                 price=price, provider="manual").id)
        for i, (o, price) in enumerate(EVENTS)
    ]
    return orgs, events


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=45), plan=st.integers(1, 3), first=st.integers(1, 6))
def test_owed_back_ticket_money_and_fees_add_up_for_every_event_organizer_and_currency(
    fresh_ledger: Ledger, steps: list[tuple[str, int, int, bool | None]], plan: int, first: int
) -> None:
    ledger, service = fresh_ledger, fresh_ledger.service
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    service.clock = lambda: now[0]
    orgs, events = _setup(ledger, plan)
    regs: list[str] = []
    model: dict[str, Expected] = {}
    event_of: dict[str, int] = {}
    last_payment: dict[str, tuple[str, int]] = {}  # registration -> (reference, amount) of its last payment

    # ``first`` registrations before anything else, so that money moves from the start.
    for n, (action, pick, size, ends_access) in enumerate([("register", i, 1, None) for i in range(first)] + steps):
        try:
            if action == "project":
                ProjectionRunner(ledger, batch_size=size).catch_up()
            elif action == "lapse":
                now[0] += timedelta(hours=1)  # every open checkout's seat hold lapses
            elif action == "register":
                e = pick % len(events)
                rid = str(service.register_participant(events[e], name=f"P{n}", email=f"p{n}@x.org", fields={}).id)
                regs.append(rid)
                model[rid], event_of[rid] = Expected(EVENTS[e][1].minor), e
            elif action == "cancel":
                e = pick % len(events)
                service.cancel_event(events[e], reason="called off", scope=ANYONE)
                for rid, m in model.items():
                    if event_of[rid] == e and m.open:
                        m.closes()
            elif regs:
                rid = regs[pick % len(regs)]
                m = model[rid]
                currency = EVENTS[event_of[rid]][1].currency
                if action == "pay_repeat":
                    if rid in last_payment:  # the same fact delivered again: idempotent
                        reference, amount = last_payment[rid]
                        service.record_payment(rid, amount=Money(amount, currency), provider="manual",
                                               reference=reference)
                elif action.startswith("pay"):
                    amount = {"pay": max(1, m.price - m.paid), "pay_twice": m.price,
                              "pay_part": max(1, m.price * size // 100)}[action]
                    after = service.record_payment(rid, amount=Money(amount, currency), provider="manual",
                                                   reference=f"pay{n}", method="bank transfer")
                    m.pays(amount, found_seat=after.closed_reason != "capacity_exhausted")
                    last_payment[rid] = (f"pay{n}", amount)
                elif action == "confirm":
                    service.confirm(rid, scope=ANYONE)
                elif action == "reject":
                    service.reject(rid, reason="no", scope=ANYONE)
                    m.closes()
                else:
                    left = m.paid - m.refunded
                    amount = left if action == "refund_all" else max(1, left * size // 100)
                    service.record_refund(rid, amount=Money(amount, currency), reference=f"ref{n}",
                                          ends_access=ends_access)
                    m.refunds(amount, ends_access)
        except LedgerError:
            pass  # a refused command records nothing; the model must not move either

    for rid in regs:  # the aggregate keeps the rules
        reg, m = service.registration(rid), model[rid]
        assert (reg.paid_minor, reg.refunded_minor, reg.ticket_minor, reg.refund_due_minor, reg.is_open) == (
            m.paid, m.refunded, m.ticket, m.owed, m.open), rid
        assert reg.fee_minor - reg.fee_reversed_minor == DEFAULT_FEE_POLICY.fee_on(m.ticket)

    ProjectionRunner(ledger, batch_size=steps[0][2]).catch_up()
    incremental = snapshot(ledger), _figures(ledger, orgs, events)
    rebuild(ledger, batch_size=1 + steps[-1][2])
    assert (snapshot(ledger), _figures(ledger, orgs, events)) == incremental  # rebuilt from zero: the same

    event_figures, report_figures = incremental[1]
    for e, event_id in enumerate(events):  # every event (GET /v1/events/{id} money)
        mine = [model[r] for r in regs if event_of[r] == e]
        gross, refunded, due, fee = event_figures[event_id]
        assert (gross, refunded, due) == (sum(m.paid for m in mine), sum(m.refunded for m in mine),
                                          sum(m.owed for m in mine))
        assert gross - refunded - due == sum(m.ticket for m in mine)
        assert fee == sum(DEFAULT_FEE_POLICY.fee_on(m.ticket) for m in mine)
    for (o, currency), (gross, refunded, due, fee) in report_figures.items():  # every organizer x currency
        mine = [model[r] for r in regs if (EVENTS[event_of[r]][0], EVENTS[event_of[r]][1].currency) == (o, currency)]
        assert (gross, refunded, due) == (sum(m.paid for m in mine), sum(m.refunded for m in mine),
                                          sum(m.owed for m in mine)), (o, currency)
        assert gross - refunded - due == sum(m.ticket for m in mine)
        assert fee == sum(DEFAULT_FEE_POLICY.fee_on(m.ticket) for m in mine)


def _figures(
    ledger: Ledger, orgs: list[str], events: list[str]
) -> tuple[dict[str, tuple[int, int, int, int]], dict[tuple[int, str], tuple[int, int, int, int]]]:
    """What the views say: each event's money, and each organizer x currency's
    fee report total (checked to be the sum of its rows, by day and by year)."""
    by_event = {}
    for event_id, (_, price) in zip(events, EVENTS, strict=True):
        m = who_paid_query.event_money(ledger, event_id, price.currency)
        by_event[event_id] = (m.gross_minor, m.refunded_minor, m.refund_due_minor, m.fee_minor)
    by_org: dict[tuple[int, str], tuple[int, int, int, int]] = {}
    for o, org_id in enumerate(orgs):
        for currency in sorted({p.currency for owner, p in EVENTS if owner == o}):
            daily = fee_report.query(ledger.db, organizer=org_id, currency=currency, period="day")
            yearly = fee_report.query(ledger.db, organizer=org_id, currency=currency, period="year")
            assert daily.totals == yearly.totals  # whatever the grouping
            for report in (daily, yearly):
                for total in report.totals:
                    for name in ("gross_minor", "refunded_minor", "refund_due_minor", "fee_charged_minor",
                                 "fee_reversed_minor", "tickets", "payments", "refund_count"):
                        assert getattr(total, name) == sum(getattr(i, name) for i in report.items)
            found = daily.totals[0] if daily.totals else None
            by_org[(o, currency)] = (
                (found.gross_minor, found.refunded_minor, found.refund_due_minor, found.fee_minor) if found
                else (0, 0, 0, 0))
    return by_event, by_org
