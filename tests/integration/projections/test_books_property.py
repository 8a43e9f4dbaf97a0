"""Issue 15's property (R22): for random histories -- payments by several
providers, duplicates, part and late payments, payments delivered twice,
rejections, confirmations, cancels, partial and full refunds with every
``ends_access``, and the provider's corrections (issue 18: disputes, funds
withdrawn in part or in full and reinstated, disputes won and lost, reversals,
failed refunds), across two organizers and three currencies, some commands sent
by concurrent writers, the views projected at random moments in random batch
sizes:

* every journal entry balances (per entry and currency);
* the trial balance balances per currency **at every position** of the log;
* the books agree with the fee report and with who paid -- gross, refunded,
  withdrawn, owed back, fee -- per organizer and currency, now and as of every
  position; ``held − refunds_paid − withdrawn = ticket_revenue + owed_back``;
* who paid says what the aggregate says, registration by registration (money,
  status, the ``disputed`` marker);
* the books as of position ``n`` equal the books built from the first ``n``
  events alone (a generation filled from position 0 up to ``n``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from eventsourcing.persistence import Notification
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from ledger.container import Ledger
from ledger.domain.registration import Registration
from ledger.errors import LedgerError
from ledger.money import Money
from ledger.scope import ANYONE
from projections import books, books_query, fee_report, generations
from projections.batch import RELEVANT_TOPICS, Batch, apply_batch
from projections.decoding import EventDecoder
from projections.runner import ProjectionRunner
from tests.integration.projections.test_money_property import EVENTS

PROVIDERS = ("manual", "stripe", "paypal")
ACTIONS = ("register", "pay", "pay", "pay", "pay_twice", "pay_part", "pay_repeat", "confirm", "reject", "cancel",
           "refund_part", "refund_part", "refund_all", "lapse", "project", "burst",
           # issue 18: the provider's corrections
           "dispute", "withdraw", "withdraw", "reinstate", "reinstate", "resolve", "reverse", "refund_fail",
           "refund_fail")
STEP = st.tuples(st.sampled_from(ACTIONS), st.integers(0, 30), st.integers(1, 99),
                 st.sampled_from([None, True, False]))

#: What a provider's correction needs on its registration (else it is sent to any one, to be refused).
TARGETED: dict[str, Callable[[Registration], bool]] = {
    "dispute": lambda r: r.paid_minor > r.refunded_minor + r.withdrawn_minor,
    "withdraw": lambda r: r.paid_minor > r.refunded_minor + r.withdrawn_minor,
    "reverse": lambda r: r.paid_minor > r.refunded_minor + r.withdrawn_minor,
    "reinstate": lambda r: any(d["withdrawn_minor"] > d["reinstated_minor"] for d in r.disputes.values()),
    "resolve": lambda r: any(d["outcome"] is None for d in r.disputes.values()),
    "refund_fail": lambda r: any(x["reference"] not in r.failed_refunds for x in r.refunds),
}

#: (organizer, currency) -> gross, refunded, withdrawn, owed back, fee
Figures = dict[tuple[str, str], tuple[int, int, int, int, int]]


def _setup(ledger: Ledger) -> tuple[list[str], list[str]]:
    service = ledger.service
    orgs = []
    for n in range(2):
        org = service.register_organizer(name=f"O{n}", country="PL", plan_size=2)
        service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda _: None)
        orgs.append(str(org.id))
    events = [
        str(service.create_event(organizer_id=orgs[o], title=f"E{i}", description="",
                                 sessions=[datetime(2037, 12, 1, tzinfo=UTC)], timezone="UTC", permanent=False,
                                 price=price, provider="manual").id)
        for i, (o, price) in enumerate(EVENTS)
    ]
    return orgs, events


def _command(ledger: Ledger, action: str, rid: str, currency: str, size: int, ends_access: bool | None,
             n: int, last_payment: dict[str, tuple[str, str, int]]) -> None:
    service = ledger.service
    reg = service.registration(rid)
    provider = PROVIDERS[n % len(PROVIDERS)]
    if action == "pay_repeat":
        if rid in last_payment:  # the same fact delivered again: changes nothing
            provider, reference, amount = last_payment[rid]
            service.record_payment(rid, amount=Money(amount, currency), provider=provider, reference=reference)
    elif action.startswith("pay"):
        amount = {"pay": max(1, reg.price_minor - reg.paid_minor), "pay_twice": reg.price_minor,
                  "pay_part": max(1, reg.price_minor * size // 100)}[action]
        service.record_payment(rid, amount=Money(amount, currency), provider=provider, reference=f"pay{n}",
                               method="card")
        last_payment[rid] = (provider, f"pay{n}", amount)
    elif action == "confirm":
        service.confirm(rid, scope=ANYONE)
    elif action == "reject":
        service.reject(rid, reason="no", scope=ANYONE)
    elif action == "refund_fail":  # a recorded refund fails at the provider (or a reference it never had)
        references = [r["reference"] for r in reg.refunds] or ["ref-none"]
        service.record_refund_failure(rid, reference=references[size % len(references)])
    elif action.startswith("refund"):
        left = reg.paid_minor - reg.refunded_minor - reg.withdrawn_minor
        amount = left if action == "refund_all" else max(1, left * size // 100)
        service.record_refund(rid, amount=Money(amount, currency), reference=f"ref{n}", ends_access=ends_access)
    else:
        _correction(ledger, action, rid, currency, size, ends_access, n, last_payment)


def _correction(ledger: Ledger, action: str, rid: str, currency: str, size: int, ends_access: bool | None,
                n: int, last_payment: dict[str, tuple[str, str, int]]) -> None:
    """Issue 18: what the provider does by itself.  Amounts are a share of the
    money held (``size`` %, all of it from 90 up); the dispute acted on is an
    existing one (or a new id, which the rules must take too)."""
    service = ledger.service
    reg = service.registration(rid)
    held = reg.paid_minor - reg.refunded_minor - reg.withdrawn_minor
    part = held if size >= 90 else max(1, held * size // 100)
    disputes = sorted(reg.disputes)
    dispute_id = disputes[size % len(disputes)] if disputes and size % 7 else f"dp{n}"
    provider, reference, _ = last_payment.get(rid, ("stripe", "none", 0))
    if action == "dispute":
        service.record_dispute(rid, dispute_id=f"dp{n}", provider=provider, reference=reference,
                               amount=Money(max(1, held), currency), reason=None)
    elif action == "withdraw":
        service.record_funds_withdrawn(rid, dispute_id=dispute_id, amount=Money(part, currency))
    elif action == "reinstate":
        dispute_id = next((k for k, d in sorted(reg.disputes.items()) if d["withdrawn_minor"] > d["reinstated_minor"]
                           and size % 5), dispute_id)
        withdrawn = reg.disputes.get(dispute_id, {}).get("withdrawn_minor", 0)
        amount = withdrawn if size >= 50 else max(1, withdrawn * size // 50)
        service.record_funds_reinstated(rid, dispute_id=dispute_id, amount=Money(amount, currency))
    elif action == "resolve":  # ends_access: True lost, False won, None lost when something was withdrawn
        dispute_id = next((k for k, d in sorted(reg.disputes.items()) if d["outcome"] is None and size % 5),
                          dispute_id)
        lost = ends_access if ends_access is not None else reg.disputes.get(dispute_id, {}).get("withdrawn_minor", 0) > 0
        service.resolve_dispute(rid, dispute_id=dispute_id, outcome="lost" if lost else "won")
    elif action == "reverse":
        service.record_reversal(rid, reversal_id=f"rv{n}", reference=reference, amount=Money(part, currency))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=40), first=st.integers(1, 5))
@example(steps=[  # every correction at least once, on one registration, projected in between
    ("pay", 0, 50, None), ("dispute", 0, 50, None), ("withdraw", 0, 50, None), ("project", 0, 3, None),
    ("reinstate", 0, 60, None), ("resolve", 0, 50, True), ("refund_part", 0, 50, None), ("refund_fail", 0, 0, None),
    ("pay_twice", 0, 50, None), ("reverse", 0, 95, None), ("register", 1, 1, None), ("pay", 1, 50, None),
    ("withdraw", 1, 30, None), ("resolve", 1, 30, False), ("burst", 1, 2, None)], first=1)
def test_books_balance_at_every_position_and_agree_with_fee_report_and_who_paid(
    fresh_ledger: Ledger, steps: list[tuple[str, int, int, bool | None]], first: int
) -> None:
    ledger, service = fresh_ledger, fresh_ledger.service
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    service.clock = lambda: now[0]
    _, events = _setup(ledger)
    regs: list[str] = []
    currency_of: dict[str, str] = {}
    last_payment: dict[str, tuple[str, str, int]] = {}

    def attempt(action: str, pick: int, size: int, ends_access: bool | None, n: int) -> None:
        rid = regs[pick % len(regs)]
        if action in TARGETED:  # a correction goes to a registration it can correct, when there is one
            fits = [r for r in regs if TARGETED[action](service.registration(r))]
            rid = fits[pick % len(fits)] if fits else rid
        try:
            _command(ledger, action, rid, currency_of[rid], size, ends_access, n, last_payment)
        except LedgerError:
            pass  # refused: records nothing

    for n, (action, pick, size, ends_access) in enumerate([("register", i, 1, None) for i in range(first)] + steps):
        try:
            if action == "project":
                ProjectionRunner(ledger, batch_size=size).catch_up()
            elif action == "lapse":
                now[0] += timedelta(hours=1)
            elif action == "register":
                e = pick % len(events)
                rid = str(service.register_participant(events[e], name=f"P{n}", email=f"p{n}@x.org", fields={}).id)
                regs.append(rid)
                currency_of[rid] = EVENTS[e][1].currency
            elif action == "cancel":
                service.cancel_event(events[pick % len(events)], reason="called off", scope=ANYONE)
            elif action == "burst" and regs:  # concurrent writers, on the same or other registrations
                kinds = ("pay", "pay_twice", "refund_part", "reject", "withdraw", "refund_fail", "reverse")
                threads = [threading.Thread(target=attempt, args=(kinds[(pick + k) % len(kinds)], pick + k * size, size,
                                                                    ends_access, 1000 * n + k)) for k in range(3)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            elif regs:
                attempt(action, pick, size, ends_access, n)
        except LedgerError:
            pass

    ProjectionRunner(ledger, batch_size=steps[0][2]).catch_up()
    with ledger.db.transaction() as conn:
        unbalanced = conn.execute(
            "SELECT position FROM projections.journal_lines GROUP BY position, currency"
            " HAVING sum(debit_minor) <> sum(credit_minor)").fetchall()
        positions = [int(r[0]) for r in conn.execute(
            "SELECT DISTINCT position FROM projections.journal_entries ORDER BY 1").fetchall()]
        head = int(conn.execute("SELECT position FROM projections.generations WHERE state = 'active'"
                                ).fetchone()[0])  # type: ignore[index]
        who_paid = {(o, c): (int(g), int(r), int(w), int(d), int(f)) for o, c, g, r, w, d, f in conn.execute(
            "SELECT organizer_id, currency, sum(paid_minor), sum(refunded_minor), sum(withdrawn_minor),"
            " sum(refund_due_minor), sum(fee_minor - fee_reversed_minor) FROM projections.who_paid"
            " GROUP BY 1, 2").fetchall()}
        rows = {str(r[0]): tuple(r[1:]) for r in conn.execute(
            "SELECT registration_id, paid_minor, refunded_minor, withdrawn_minor, refund_due_minor, ticket_minor,"
            " fee_minor - fee_reversed_minor, status, disputed FROM projections.who_paid").fetchall()}
        for (kind,) in conn.execute("SELECT DISTINCT kind FROM projections.journal_entries").fetchall():
            event(f"posted {kind}")  # --hypothesis-show-statistics: the corrections are exercised
    assert unbalanced == []
    for rid in regs:  # who paid says what the aggregate says
        reg = service.registration(rid)
        assert rows[rid] == (reg.paid_minor, reg.refunded_minor, reg.withdrawn_minor, reg.refund_due_minor,
                             reg.ticket_minor, reg.fee_outstanding_minor, reg.status, reg.disputed), rid

    # Now: the books agree with who paid and with the fee report.
    present = _from_books(books_query.trial_balance(ledger.db))
    assert {k: v for k, v in present.items() if any(v)} == {k: v for k, v in who_paid.items() if any(v)}
    assert present == _from_fee_report(ledger, None, present)

    # At every position (each entry, and one before the first): balanced, equal
    # to the sums of the lines up to it, to the fee report as of it, and to a
    # generation built from the first n events alone.
    checked = sorted({0, *positions, head})
    for n in checked:
        trial = books_query.trial_balance(ledger.db, as_of=f"position:{n}")
        assert trial.as_of.position == n
        assert trial.balanced and all(t.debit_minor == t.credit_minor for t in trial.totals), n
        assert _balances(trial) == _lines_up_to(ledger, n), n
        figures = _from_books(trial)
        assert figures == _from_fee_report(ledger, n, figures), n
    for n in (checked[len(checked) // 2], checked[-1], *checked[1:3]):
        assert _balances(books_query.trial_balance(ledger.db, as_of=f"position:{n}")) == _built_from_first(
            ledger, n), n


def _balances(trial: books_query.TrialBalance) -> dict[tuple[str, str, str], tuple[int, int]]:
    return {(a.organizer_id, a.currency, a.account): (a.debit_minor, a.credit_minor) for a in trial.accounts
            if a.debit_minor or a.credit_minor}


def _from_books(trial: books_query.TrialBalance) -> Figures:
    """gross, refunded, withdrawn, owed back, fee per organizer and currency, read
    off the accounts."""
    found: dict[tuple[str, str], list[int]] = {}
    for a in trial.accounts:
        f = found.setdefault((a.organizer_id, a.currency), [0, 0, 0, 0, 0])
        if a.account.startswith(books.HELD):
            f[0] += a.debit_minor - a.credit_minor
        elif a.account == books.REFUNDS_PAID:
            f[1] += a.credit_minor - a.debit_minor
        elif a.account == books.WITHDRAWN:
            f[2] += a.credit_minor - a.debit_minor
        elif a.account == books.OWED_BACK:
            f[3] += a.credit_minor - a.debit_minor
        elif a.account == books.FEE_PAYABLE:
            f[4] += a.credit_minor - a.debit_minor
        if a.account == books.FEE_EXPENSE:
            assert a.balance_minor == -next(x.balance_minor for x in trial.accounts if (
                x.organizer_id, x.currency, x.account) == (a.organizer_id, a.currency, books.FEE_PAYABLE))
    for (o, c), (gross, refunded, withdrawn, owed, _) in found.items():  # held = ticket revenue + owed back
        ticket = next((-x.balance_minor for x in trial.accounts
                       if (x.organizer_id, x.currency, x.account) == (o, c, books.TICKET_REVENUE)), 0)
        assert gross - refunded - withdrawn == ticket + owed, (o, c)
    return {k: (v[0], v[1], v[2], v[3], v[4]) for k, v in found.items()}


def _from_fee_report(ledger: Ledger, position: int | None, keys: Figures) -> Figures:
    report = fee_report.query(ledger.db, period="year", as_of=None if position is None else f"position:{position}")
    found: dict[tuple[str, str], list[int]] = {}
    for i in report.items:
        f = found.setdefault((str(i.organizer_id), i.currency), [0, 0, 0, 0, 0])
        f[0] += i.gross_minor
        f[1] += i.refunded_minor
        f[2] += i.withdrawn_minor
        f[3] += i.refund_due_minor
        f[4] += i.fee_minor
    return {k: (found[k][0], found[k][1], found[k][2], found[k][3], found[k][4]) if k in found
            else (0, 0, 0, 0, 0) for k in keys}


def _lines_up_to(ledger: Ledger, n: int) -> dict[tuple[str, str, str], tuple[int, int]]:
    with ledger.db.transaction() as conn:
        rows = conn.execute(
            "SELECT organizer_id, currency, account, sum(debit_minor), sum(credit_minor)"
            " FROM projections.journal_lines WHERE position <= %s GROUP BY 1, 2, 3", (n,)).fetchall()
    return {(o, c, a): (int(d), int(k)) for o, c, a, d, k in rows if d or k}


def _built_from_first(ledger: Ledger, n: int) -> dict[tuple[str, str, str], tuple[int, int]]:
    """The account totals of a generation filled with the first ``n`` events
    only (built in a transaction that is rolled back)."""
    recorder = ledger.store.recorder
    found: list[Notification] = []
    after = 0
    while True:
        page = recorder.select_notifications(start=after, limit=1000, topics=sorted(RELEVANT_TOPICS),
                                             inclusive_of_start=False)
        found += [x for x in page if x.id <= n]
        if not page or page[-1].id >= n:
            break
        after = page[-1].id
    with ledger.db.transaction() as conn, conn.transaction(force_rollback=True):
        generation = generations.create_building(conn, target=n)
        apply_batch(conn, generation, EventDecoder(ledger.store.mapper), Batch(0, found, n))
        rows = conn.execute(
            f'SELECT organizer_id, currency, account, debit_minor, credit_minor FROM "{generation.schema_name}"'
            ".book_accounts").fetchall()
    return {(o, c, a): (int(d), int(k)) for o, c, a, d, k in rows if d or k}
