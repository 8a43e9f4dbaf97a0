"""Hypothesis: for random command histories, the views kept incrementally
(projected at random moments, in random batch sizes) equal the views rebuilt
from position 0 — and both agree with the aggregates."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.container import Ledger
from ledger.errors import LedgerError
from ledger.money import Money
from ledger.scope import ANYONE
from projections.rebuild import rebuild
from projections.runner import ProjectionRunner
from tests.integration.projections.history import aggregate_view, snapshot

ACTIONS = ("register", "checkout", "pay", "pay_partly", "fail", "confirm", "reject", "resend", "refund_part",
           "refund_all", "cancel_event", "project")
STEP = st.tuples(st.sampled_from(ACTIONS), st.integers(0, 7), st.integers(1, 60))
PRICES = (Money(1010, "PLN"), Money(4999, "EUR"))


def run_step(ledger: Ledger, events: list[str], regs: list[str], step: tuple[str, int, int], n: int) -> None:
    action, pick, size = step
    service = ledger.service
    if action == "project":
        ProjectionRunner(ledger, batch_size=size).catch_up()
        return
    if action in ("register", "cancel_event"):
        event_id = events[pick % len(events)]
        if action == "register":
            regs.append(str(service.register_participant(event_id, name=f"P{n}", email=f"p{n}@x.org",
                                                         fields={}).id))
        else:
            service.cancel_event(event_id, reason="called off", scope=ANYONE)
        return
    if not regs:
        return
    rid = regs[pick % len(regs)]
    reg = service.registration(rid)
    due = Money(max(1, reg.price_minor - reg.paid_minor), reg.currency)
    if action == "checkout":
        service.start_checkout(rid, provider="manual", url="https://pay.example/x", reference=f"cs{n}")
    elif action == "pay":
        service.record_payment(rid, amount=due, provider="manual", reference=f"pay{n}")
    elif action == "pay_partly":
        part = Money(max(1, reg.price_minor * size // 100), reg.currency)
        service.record_payment(rid, amount=part, provider="manual", reference=f"part{n}")
    elif action == "fail":
        service.record_payment_failure(rid, reason="card_declined", reference=f"cs{n}")
    elif action == "confirm":
        service.confirm(rid, scope=ANYONE)
    elif action == "reject":
        service.reject(rid, reason="no", scope=ANYONE)
    elif action == "resend":
        service.request_resend(rid, scope=ANYONE)
    else:
        left = reg.paid_minor - reg.refunded_minor
        amount = left if action == "refund_all" else max(1, left * size // 100)
        service.record_refund(rid, amount=Money(amount, reg.currency), reference=f"ref{n}")


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=40), plan=st.integers(1, 4))
def test_incremental_views_equal_rebuilt_views(fresh_ledger: Ledger, steps: list[tuple[str, int, int]],
                                               plan: int) -> None:
    service = fresh_ledger.service
    org = service.register_organizer(name="O", country="PL", plan_size=plan)
    service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda _: None)
    events = [
        str(service.create_event(organizer_id=str(org.id), title=f"E{i}", description="",
                                 sessions=[datetime(2038, 1, 1, tzinfo=UTC)], timezone="UTC",
                                 permanent=False, price=price, provider="manual").id)
        for i, price in enumerate(PRICES)
    ]
    regs: list[str] = []
    for n, step in enumerate(steps):
        try:
            run_step(fresh_ledger, events, regs, step, n)
        except LedgerError:
            pass  # a refused command records nothing; the views must agree on that too
    ProjectionRunner(fresh_ledger, batch_size=steps[0][2]).catch_up()
    incremental = snapshot(fresh_ledger)
    rebuild(fresh_ledger, batch_size=1 + steps[-1][2])
    assert snapshot(fresh_ledger) == incremental

    with fresh_ledger.db.transaction() as conn:
        rows = {
            str(r[0]): dict(zip(("status", "paid_minor", "refunded_minor", "refund_due_minor", "fee_minor",
                                 "fee_reversed_minor"), r[1:], strict=True))
            for r in conn.execute(
                "SELECT registration_id, status, paid_minor, refunded_minor, refund_due_minor, fee_minor,"
                " fee_reversed_minor FROM projections.who_paid WHERE organizer_id = %s", (str(org.id),)
            ).fetchall()
        }
        fees = conn.execute(
            "SELECT currency, sum(gross_minor), sum(refunded_minor), sum(fee_minor), sum(fee_reversed_minor)"
            " FROM projections.fee_daily WHERE organizer_id = %s GROUP BY currency", (str(org.id),)
        ).fetchall()
    assert set(rows) == set(regs)
    for rid in regs:
        assert rows[rid] == aggregate_view(fresh_ledger, rid), rid
    for currency, gross, refunded, fee, reversed_fee in fees:
        mine = [rows[r] for r in regs if service.registration(r).currency == currency]
        assert gross == sum(r["paid_minor"] for r in mine)
        assert refunded == sum(r["refunded_minor"] for r in mine)
        assert fee == sum(r["fee_minor"] for r in mine)
        assert reversed_fee == sum(r["fee_reversed_minor"] for r in mine)
