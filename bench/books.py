"""Benchmark of the books (issue 15): posting rate and trial-balance queries.

Starts its own embedded PostgreSQL in a temp dir and measures, in one run:

1. **Posting beside the runner.**  ``--events`` synthetic but valid events
   (bench/projections.py's generator: real aggregates, stored in bulk), then the
   projection runner's catch-up from position 0 -- which posts the journal in
   the same batches.  The time spent inside the journal (``Journal.add`` and
   ``Journal.save``) is measured during that same catch-up, so the figures are
   the runner's own rate and the journal's posting rate in the same run.
2. **Queries over 1M events.**  Going through the command path for a million
   events takes far too long, so the journal is **synthesized in bulk by SQL**
   straight into a fresh database's active generation: ``--journal-events``
   entries (default 1,000,000) for 1,000 organizers x 3 currencies (payments,
   excess payments, refunds with fee reversal, in their real line shapes), with
   every line's running totals, the account totals, a checkpoint of every
   account every ``books.CHECKPOINT_EVERY`` positions (as the runner takes
   them) and the views' position set to the last entry.  Then:

   * the trial balance now, every organizer (``books_query.trial_balance``), p50/p95;
     and the same with every account of the answer read, as the API does;
   * the trial balance as of a random position, every organizer, p50/p95;
   * the same two for one organizer.

    .venv/bin/python bench/books.py                 # 200k events for 1., 1M entries for 2.

Targets: posting keeps up with the runner; trial balance p95 <= 50 ms; as of
p95 <= 200 ms.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from entrypoints.bootstrap import Ledger, bootstrap
from ledger.config import Settings

ORGANIZERS = 1000
CURRENCIES = ("USD", "EUR", "PLN")


def _settings(tmp: Path) -> Settings:
    return Settings.from_env({"LEDGER_DATA_DIR": str(tmp / "data"), "LEDGER_SECRET_KEY": "22" * 32})


def _generator() -> Any:
    """bench/projections.py's Generator (loaded by path: its module name would
    clash with the ``projections`` package)."""
    spec = importlib.util.spec_from_file_location("bench_projections", Path(__file__).with_name("projections.py"))
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Generator


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def posting_beside_runner(ledger: Ledger, events: int) -> dict[str, Any]:
    from projections import books
    from projections.runner import ProjectionRunner

    generated = time.perf_counter()
    _generator()(ledger).run(events, 1000)
    figures: dict[str, Any] = {"generate_s": round(time.perf_counter() - generated, 1)}
    spent = [0.0]
    add, save = books.Journal.add, books.Journal.save

    def timed_add(self: books.Journal, fact: books.Fact) -> None:
        started = time.perf_counter()
        add(self, fact)
        spent[0] += time.perf_counter() - started

    def timed_save(self: books.Journal, conn: Any, schema: str) -> None:
        started = time.perf_counter()
        save(self, conn, schema)
        spent[0] += time.perf_counter() - started

    books.Journal.add, books.Journal.save = timed_add, timed_save  # type: ignore[method-assign]
    try:
        started = time.perf_counter()
        consumed = ProjectionRunner(ledger).catch_up()
        seconds = time.perf_counter() - started
    finally:
        books.Journal.add, books.Journal.save = add, save  # type: ignore[method-assign]
    with ledger.db.transaction() as conn:
        row = conn.execute("SELECT count(*), (SELECT count(*) FROM projections.journal_lines)"
                           " FROM projections.journal_entries").fetchone()
    assert row is not None
    entries, lines = int(row[0]), int(row[1])
    figures.update({
        "log_positions": consumed, "runner_s": round(seconds, 2),
        "runner_events_per_s": round(consumed / seconds),
        "journal_entries": entries, "journal_lines": lines, "journal_s": round(spent[0], 2),
        "journal_share_of_runner": round(spent[0] / seconds, 3),
        "journal_entries_per_s": round(entries / spent[0]) if spent[0] else None,
        "journal_log_positions_per_s": round(consumed / spent[0]) if spent[0] else None,
    })
    return figures


_SYNTHESIZE = """
CREATE TEMP TABLE bench_entries AS
SELECT p AS position,
       (p * 7919) % {orgs} AS org,
       (p * 31) % 3 AS cur,
       -- p / 7: the kind must not follow from the organizer (p mod 1000)
       CASE WHEN (p / 7) % 20 < 17 THEN 'pay' WHEN (p / 7) % 20 < 19 THEN 'refund' ELSE 'excess' END AS kind,
       (100 + (p * 104729) % 99900)::bigint AS amount
FROM generate_series(1::bigint, {n}::bigint) AS p;

INSERT INTO "{s}".book_accounts (account_id, organizer_id, currency, account, position)
SELECT row_number() OVER (ORDER BY o, c, a)::int, md5('o' || o::text)::uuid::text,
       (ARRAY['USD', 'EUR', 'PLN'])[c + 1], a, 0
FROM generate_series(0, {orgs} - 1) AS o, generate_series(0, 2) AS c,
     unnest(ARRAY['held:stripe', 'refunds_paid', 'ticket_revenue', 'owed_back', 'fee_expense', 'fee_payable']) AS a;

INSERT INTO "{s}".journal_entries (position, event_id, kind, organizer_id, currency, registration_id,
                                    paid_event_id, occurred_at)
SELECT position, md5(position::text)::uuid,
       CASE kind WHEN 'refund' THEN 'RefundRecorded' ELSE 'PaymentRecorded' END,
       md5('o' || org::text)::uuid::text, (ARRAY['USD', 'EUR', 'PLN'])[cur + 1],
       md5('r' || position::text)::uuid, md5('e' || org::text)::uuid,
       timestamptz '2025-01-01' + position * interval '30 seconds'
FROM bench_entries;

CREATE TEMP TABLE bench_lines AS
SELECT e.position, l.line_no::smallint AS line_no, md5('o' || e.org::text)::uuid::text AS organizer_id,
       (ARRAY['USD', 'EUR', 'PLN'])[e.cur + 1] AS currency, l.account, l.debit, l.credit
FROM bench_entries e, LATERAL (VALUES
  -- a payment: held, ticket revenue, the 5% fee
  (1, 'held:stripe', CASE WHEN e.kind <> 'refund' THEN e.amount ELSE 0 END, 0::bigint),
  (2, 'ticket_revenue', 0::bigint, CASE WHEN e.kind = 'pay' THEN e.amount ELSE 0 END),
  (3, 'owed_back', 0::bigint, CASE WHEN e.kind = 'excess' THEN e.amount ELSE 0 END),
  (4, 'fee_expense', CASE WHEN e.kind = 'pay' THEN (e.amount * 5 + 50) / 100 ELSE 0 END, 0::bigint),
  (5, 'fee_payable', 0::bigint, CASE WHEN e.kind = 'pay' THEN (e.amount * 5 + 50) / 100 ELSE 0 END),
  -- a refund of ticket money, its fee given back
  (6, 'ticket_revenue', CASE WHEN e.kind = 'refund' THEN e.amount / 2 ELSE 0 END, 0::bigint),
  (7, 'refunds_paid', 0::bigint, CASE WHEN e.kind = 'refund' THEN e.amount / 2 ELSE 0 END),
  (8, 'fee_payable', CASE WHEN e.kind = 'refund' THEN (e.amount / 2 * 5 + 50) / 100 ELSE 0 END, 0::bigint),
  (9, 'fee_expense', 0::bigint, CASE WHEN e.kind = 'refund' THEN (e.amount / 2 * 5 + 50) / 100 ELSE 0 END)
) AS l(line_no, account, debit, credit)
WHERE l.debit + l.credit > 0;

INSERT INTO "{s}".journal_lines (position, line_no, account_id, organizer_id, currency, account, debit_minor,
                                  credit_minor, debit_total, credit_total)
SELECT l.position, l.line_no, a.account_id, l.organizer_id, l.currency, l.account, l.debit, l.credit,
       sum(l.debit) OVER w, sum(l.credit) OVER w
FROM bench_lines l JOIN "{s}".book_accounts a
  ON a.organizer_id = l.organizer_id AND a.currency = l.currency AND a.account = l.account
WINDOW w AS (PARTITION BY a.account_id ORDER BY l.position, l.line_no);

UPDATE "{s}".book_accounts a SET debit_minor = t.d, credit_minor = t.c, position = t.p
FROM (SELECT account_id, sum(debit_minor) AS d, sum(credit_minor) AS c, max(position) AS p
      FROM "{s}".journal_lines GROUP BY account_id) t
WHERE t.account_id = a.account_id;

INSERT INTO "{s}".book_checkpoints (position, account_id, debit_total, credit_total)
SELECT c.p, a.account_id, l.debit_total, l.credit_total
FROM generate_series({every}::bigint, {n}::bigint, {every}::bigint) AS c(p) CROSS JOIN "{s}".book_accounts a
CROSS JOIN LATERAL (SELECT j.debit_total, j.credit_total FROM "{s}".journal_lines j
                    WHERE j.account_id = a.account_id AND j.position <= c.p
                    ORDER BY j.position DESC, j.line_no DESC LIMIT 1) l;

UPDATE projections.generations SET position = {n} WHERE state = 'active';
"""


def synthesize(ledger: Ledger, entries: int) -> dict[str, Any]:
    from projections import books, generations

    started = time.perf_counter()
    with ledger.db.transaction() as conn:
        conn.execute("SET LOCAL statement_timeout = 0")
        conn.execute("SET LOCAL lock_timeout = 0")
        conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        active = generations.active(conn)
        assert active is not None
        for statement in _SYNTHESIZE.format(orgs=ORGANIZERS, n=entries, s=active.schema_name,
                                             every=books.CHECKPOINT_EVERY).split(";\n\n"):
            if statement.strip():
                conn.execute(statement)  # type: ignore[arg-type]
    import psycopg

    with psycopg.connect(ledger.database_url, autocommit=True) as conn:  # VACUUM: no transaction
        for name in ("journal_lines", "book_accounts", "journal_entries", "book_checkpoints"):
            conn.execute(f'VACUUM ANALYZE "{active.schema_name}".{name}')  # index-only probes need it
    with ledger.db.transaction() as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM projections.journal_lines),"
                           " (SELECT count(*) FROM projections.book_accounts)").fetchone()
    assert row is not None
    return {"synthesize_s": round(time.perf_counter() - started, 1), "entries": entries,
            "lines": int(row[0]), "accounts": int(row[1])}


def latencies(ledger: Ledger, entries: int, samples: int) -> dict[str, dict[str, float]]:
    from projections import books_query

    rng = random.Random(5)
    with ledger.db.transaction() as conn:
        organizers = [r[0] for r in conn.execute(
            "SELECT DISTINCT organizer_id FROM projections.book_accounts ORDER BY 1").fetchall()]
    def every_account_read(trial: books_query.TrialBalance) -> books_query.TrialBalance:
        """As a caller uses the answer: the accounts are kept as the rows the
        database returned, and each is made an ``AccountBalance`` when read."""
        for account in trial.accounts:
            account.balance_minor  # noqa: B018
        return trial

    cases = {
        "trial balance now, 1,000 organizers x 3 currencies": lambda: books_query.trial_balance(ledger.db),
        "the same, then every account read": lambda: every_account_read(books_query.trial_balance(ledger.db)),
        "trial balance as of a random position, every organizer": lambda: books_query.trial_balance(
            ledger.db, as_of=f"position:{rng.randint(1, entries)}"),
        "trial balance now, one organizer": lambda: books_query.trial_balance(
            ledger.db, organizer=rng.choice(organizers)),
        "trial balance as of a random position, one organizer": lambda: books_query.trial_balance(
            ledger.db, organizer=rng.choice(organizers),
            as_of=f"position:{rng.randint(1, entries)}"),
    }
    found = {}
    for label, run in cases.items():
        trial = run()  # warm up; and the answer must balance
        assert trial.balanced, label
        timings = []
        for _ in range(samples):
            started = time.perf_counter()
            trial = run()
            timings.append((time.perf_counter() - started) * 1000)
            assert trial.balanced
        found[label] = {"p50_ms": round(statistics.median(timings), 1), "p95_ms": round(percentile(timings, 95), 1),
                        "max_ms": round(max(timings), 1), "accounts": len(trial.accounts)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="events through the runner (part 1)")
    parser.add_argument("--journal-events", type=int, default=1_000_000, help="synthesized entries (part 2)")
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()

    from tests.support.postgres import TestServer

    tmp = tempfile.mkdtemp(prefix="bench-books-")
    server = TestServer()
    figures: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_at_start": round(os.getloadavg()[0], 2)}

    ledger = bootstrap(_settings(Path(tmp) / "posting"), url=server.new_database("bench_posting"), pool_size=4)
    try:
        figures["posting"] = posting_beside_runner(ledger, args.events)
    finally:
        ledger.close()

    ledger = bootstrap(_settings(Path(tmp) / "queries"), url=server.new_database("bench_books"), pool_size=4)
    try:
        figures["journal"] = synthesize(ledger, args.journal_events)
        figures["queries"] = latencies(ledger, args.journal_events, args.samples)
    finally:
        ledger.close()
    figures["load_avg_at_end"] = round(os.getloadavg()[0], 2)  # other processes skew every figure
    print(json.dumps(figures, indent=2))
    print(table(figures))


def table(figures: dict[str, Any]) -> str:
    p, j = figures["posting"], figures["journal"]
    lines = [
        f"{figures['cpus']} CPUs, load average {figures['load_avg_at_start']} at start,"
        f" {figures['load_avg_at_end']} at end", "",
        "| measure | result | target |", "|---|---|---|",
        f"| runner catch-up from 0, {p['log_positions']:,} log positions (books included) |"
        f" {p['runner_events_per_s']:,}/s ({p['runner_s']} s) | |",
        f"| journal posting inside that catch-up: {p['journal_entries']:,} entries, {p['journal_lines']:,} lines |"
        f" {p['journal_s']} s = {p['journal_share_of_runner']:.0%} of the runner's time;"
        f" {p['journal_log_positions_per_s']:,} log positions/s, {p['journal_entries_per_s']:,} entries/s |"
        " keeps up with the runner |",
        f"| synthesized journal (SQL, not the command path) | {j['entries']:,} entries, {j['lines']:,} lines,"
        f" {j['accounts']:,} accounts, {j['synthesize_s']} s | |",
    ]
    for label, found in figures["queries"].items():
        target = "p95 ≤ 200 ms" if "as of" in label else "p95 ≤ 50 ms"
        lines.append(f"| {label} ({found['accounts']:,} accounts) | p50 {found['p50_ms']} ms,"
                     f" p95 {found['p95_ms']} ms | {target} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
