"""Issue 15's property (R22): for random histories -- payments by several
providers, duplicates, part and late payments, payments delivered twice,
rejections, confirmations, cancels, partial and full refunds with every
``ends_access``, across two organizers and three currencies, some commands sent
by concurrent writers, the views projected at random moments in random batch
sizes:

* every journal entry balances (per entry and currency);
* the trial balance balances per currency **at every position** of the log;
* the books agree with the fee report and with who paid -- gross, refunded, owed
  back, fee -- per organizer and currency, now and as of every position;
* the books as of position ``n`` equal the books built from the first ``n``
  events alone (a generation filled from position 0 up to ``n``).
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from eventsourcing.persistence import Notification
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.container import Ledger
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
           "refund_part", "refund_part", "refund_all", "lapse", "project", "burst")
STEP = st.tuples(st.sampled_from(ACTIONS), st.integers(0, 30), st.integers(1, 99),
                 st.sampled_from([None, True, False]))

Figures = dict[tuple[str, str], tuple[int, int, int, int]]  # (organizer, currency) -> gross, refunded, owed, fee


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
    elif action.startswith("refund"):
        left = reg.paid_minor - reg.refunded_minor
        amount = left if action == "refund_all" else max(1, left * size // 100)
        service.record_refund(rid, amount=Money(amount, currency), reference=f"ref{n}", ends_access=ends_access)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps=st.lists(STEP, min_size=1, max_size=40), first=st.integers(1, 5))
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
                kinds = ("pay", "pay_twice", "refund_part", "reject")
                threads = [threading.Thread(target=attempt, args=(kinds[(pick + k) % 4], pick + k * size, size,
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
        who_paid = {(o, c): (int(g), int(r), int(d), int(f)) for o, c, g, r, d, f in conn.execute(
            "SELECT organizer_id, currency, sum(paid_minor), sum(refunded_minor), sum(refund_due_minor),"
            " sum(fee_minor - fee_reversed_minor) FROM projections.who_paid GROUP BY 1, 2").fetchall()}
    assert unbalanced == []

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
    """gross, refunded, owed back, fee per organizer and currency, read off the accounts."""
    found: dict[tuple[str, str], list[int]] = {}
    for a in trial.accounts:
        f = found.setdefault((a.organizer_id, a.currency), [0, 0, 0, 0])
        if a.account.startswith(books.HELD):
            f[0] += a.debit_minor - a.credit_minor
        elif a.account == books.REFUNDS_PAID:
            f[1] += a.credit_minor - a.debit_minor
        elif a.account == books.OWED_BACK:
            f[2] += a.credit_minor - a.debit_minor
        elif a.account == books.FEE_PAYABLE:
            f[3] += a.credit_minor - a.debit_minor
        if a.account == books.FEE_EXPENSE:
            assert a.balance_minor == -next(x.balance_minor for x in trial.accounts if (
                x.organizer_id, x.currency, x.account) == (a.organizer_id, a.currency, books.FEE_PAYABLE))
    for (o, c), (gross, refunded, owed, _) in found.items():  # money held = ticket revenue + owed back
        ticket = next((-x.balance_minor for x in trial.accounts
                       if (x.organizer_id, x.currency, x.account) == (o, c, books.TICKET_REVENUE)), 0)
        assert gross - refunded == ticket + owed, (o, c)
    return {k: (v[0], v[1], v[2], v[3]) for k, v in found.items()}


def _from_fee_report(ledger: Ledger, position: int | None, keys: Figures) -> Figures:
    report = fee_report.query(ledger.db, period="year", as_of=None if position is None else f"position:{position}")
    found: dict[tuple[str, str], list[int]] = {}
    for i in report.items:
        f = found.setdefault((str(i.organizer_id), i.currency), [0, 0, 0, 0])
        f[0] += i.gross_minor
        f[1] += i.refunded_minor
        f[2] += i.refund_due_minor
        f[3] += i.fee_minor
    return {k: (found[k][0], found[k][1], found[k][2], found[k][3]) if k in found else (0, 0, 0, 0) for k in keys}


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
