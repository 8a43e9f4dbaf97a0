"""Benchmark of the read models (issue 3, item 7).

Starts its own embedded PostgreSQL in a temp dir, writes N synthetic but valid
events (real aggregates, saved straight through the store's recorder in large
batches), then measures in the same run:

* the raw notification-read rate (``select_notifications`` alone, no decoding),
* the catch-up rate of the projection runner from position 0 into the views,
* a full ``rebuild`` (time, and peak RSS of a fresh process doing only that),
* "who paid" latency on one event with ``--participants`` registrations
  (random pages of 100 and 500, with and without ``?status=``, JSON-encoded).

    .venv/bin/python bench/projections.py --events 1000000

Targets: catch-up ≥ 30,000 events/s on 2 cores, rebuild of 1M events ≤ 60 s and
≤ 300 MB, who-paid p95 ≤ 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from entrypoints.bootstrap import Ledger, bootstrap
from ledger.config import Settings
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.money import Money
from ledger.scope import ANYONE

CURRENCIES = ("USD", "EUR", "GBP", "PLN", "CHF", "SEK")
CHUNK = 10_000  # events per insert transaction


def _settings(tmp: Path) -> Settings:
    return Settings.from_env({"LEDGER_DATA_DIR": str(tmp / "data"), "LEDGER_SECRET_KEY": "22" * 32})


class Generator:
    """Valid histories at speed: domain methods on in-memory aggregates, events
    dated over the past year, stored in CHUNK-sized transactions."""

    def __init__(self, ledger: Ledger, seed: int = 7) -> None:
        self.ledger = ledger
        self.rng = random.Random(seed)
        self.pending: list[Any] = []
        self.written = 0
        self.clock = datetime.now(UTC) - timedelta(days=365)

    def _stamp(self, events: Any) -> None:
        for e in events:
            self.clock += timedelta(seconds=self.rng.uniform(1, 40))
            e.__dict__["timestamp"] = self.clock
        self.pending.extend(events)
        if len(self.pending) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        """Encode with the store's own mapper, then COPY into the event table the
        way the recorder inserts (same table lock, same NOTIFY): the recorder's
        text-mode array dumping is slow for bulk loads, and it stalls on batches
        above ~1,500 events (see the report)."""
        if not self.pending:
            return
        store = self.ledger.store
        stored = [store.mapper.to_stored_event(e) for e in self.pending]
        table = store.recorder.events_table_name  # type: ignore[attr-defined]
        with self.ledger.db.transaction() as conn:
            conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            with conn.cursor().copy(
                f"COPY {table} (originator_id, originator_version, topic, state) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["uuid", "int8", "text", "bytea"])
                for e in stored:
                    copy.write_row((e.originator_id, e.originator_version, e.topic, e.state))
            keyring = store.keyring  # the registrations' data keys, as the recorder inserts them (R24)
            keys = keyring.pending_rows(e.originator_id for e in stored) if keyring is not None else []
            with conn.cursor().copy(
                "COPY personal_data_keys (registration_id, wrapped_key) FROM STDIN (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["uuid", "bytea"])
                for rid, wrapped in keys:
                    copy.write_row((uuid.UUID(rid), wrapped))
            conn.execute(f"NOTIFY {store.recorder.channel_name}")  # type: ignore[attr-defined]
        if store.keyring is not None:
            store.keyring.committed(e.originator_id for e in stored)
        self.written += len(stored)
        self.pending = []

    def organizer(self) -> Organizer:
        org = Organizer.register(id=uuid.uuid4(), name="Bench org", country="US", plan_size=1_000_000)
        org.connect_provider(str(uuid.uuid4()), "stripe", {"api_key": "sk_…1234"})
        self._stamp(org.collect_events())
        return org

    def event(self, org: Organizer) -> PaidEvent:
        currency = self.rng.choice(CURRENCIES)
        event = PaidEvent.create(
            id=uuid.uuid4(), organizer_id=str(org.id), title="Bench webinar", description="",
            timezone="UTC", permanent=False, sessions=[{"id": "s1", "starts_at": "2027-01-01T10:00:00+00:00"}],
            price_minor=self.rng.choice((100, 1010, 4900, 12345, 99999)), currency=currency,
            provider="stripe", connection_id=None,
        )
        self._stamp(event.collect_events())
        return event

    def registration(self, event: PaidEvent, n: int) -> None:
        """One participant's life: ~5.5 events on average (with seat events)."""
        rng = self.rng
        rid = uuid.uuid4()
        reg = Registration.register(
            id=rid, event_id=str(event.id), organizer_id=event.organizer_id, name=f"Participant {n}",
            email=f"p{n}@example.com", fields={}, language=None, price_minor=event.price_minor,
            currency=event.currency, provider="stripe",
        )
        event._seat_held(registration_id=str(rid), expires_at="2099-01-01T00:00:00+00:00")
        reg.start_checkout("stripe", "https://checkout.example/x", f"cs_{n}")
        roll = rng.random()
        if roll < 0.05:
            reg.record_payment_failure("card_declined", f"cs_{n}")
            event._seat_released(registration_id=str(rid), reason="payment_failed")
        elif roll < 0.9:
            reg.record_payment(event.price, "stripe", f"pi_{n}", seat_granted=True)
            event._seat_sold(registration_id=str(rid))
            if rng.random() < 0.2:
                reg.confirm()
            if rng.random() < 0.06:
                half = Money(max(1, event.price_minor // 2), event.currency)
                reg.record_refund(half, f"re_{n}")
                event._seat_released(registration_id=str(rid), reason="refunded")
            elif rng.random() < 0.03:
                reg.reject("duplicate")
                event._seat_released(registration_id=str(rid), reason="rejected")
        self._stamp(reg.collect_events())
        self._stamp(event.collect_events())

    def run(self, total: int, big_event: int) -> PaidEvent:
        """About ``total`` events; the first event gets ``big_event`` participants."""
        orgs = [self.organizer() for _ in range(max(1, total // 50_000))]
        big = self.event(orgs[0])
        for n in range(big_event):
            self.registration(big, n)
        n = big_event
        while self.written + len(self.pending) < total:
            event = self.event(self.rng.choice(orgs))
            for _ in range(self.rng.randint(20, 400)):
                n += 1
                self.registration(event, n)
                if self.written + len(self.pending) >= total:
                    break
        self.flush()
        return big


def raw_read_rate(ledger: Ledger, batch: int) -> tuple[int, float]:
    """Notifications read per second with no decoding: the floor of any consumer."""
    recorder = ledger.store.recorder
    position, count = 0, 0
    started = time.perf_counter()
    while True:
        rows = recorder.select_notifications(start=position, limit=batch, inclusive_of_start=False)
        if not rows:
            break
        count += len(rows)
        position = rows[-1].id
    return count, time.perf_counter() - started


def relevant_count(ledger: Ledger) -> int:
    """Events some view decodes and applies (the rest are filtered by the database)."""
    from projections.batch import RELEVANT_TOPICS

    table = ledger.store.recorder.events_table_name  # type: ignore[attr-defined]
    with ledger.db.transaction() as conn:
        found = conn.execute(f"SELECT count(*) FROM {table} WHERE topic = ANY(%s)", (list(RELEVANT_TOPICS),))
        row = found.fetchone()
    return int(row[0]) if row else 0


def table(figures: dict[str, Any]) -> str:
    """The figures as the markdown table docs/projections.md shows."""
    wp = figures["who_paid"]
    lines = [
        f"{figures['cpus']} CPUs, load average {figures['load_avg_at_start']} at start,"
        f" {figures['load_avg_at_end']} at end", "",
        "| measure | result | target |", "|---|---|---|",
        f"| events stored | {figures['stored_events']:,} ({figures['relevant_events']:,} read by a view) | |",
        f"| raw notification read (`select_notifications`, all, no decoding) |"
        f" {figures['raw_read_events_per_s']:,}/s | |",
        f"| the runner's reader alone (binary, view topics, no decoding) | {figures['runner_read_events_per_s']:,}/s"
        " | |",
        f"| runner catch-up from 0 (log positions consumed) | {figures['catch_up_events_per_s']:,}/s"
        f" ({figures['catch_up_s']} s) | ≥ 30,000/s |",
        f"| … of which events decoded and applied | {figures['catch_up_view_events_per_s']:,}/s | |",
        f"| full rebuild | {figures['rebuild_s']} s ({figures['rebuild_events_per_s']:,}/s) | ≤ 60 s for 1M |",
        f"| rebuild peak RSS (process doing only the rebuild) | {figures['rebuild_peak_rss_mb']} MB | ≤ 300 MB |",
    ]
    for label, found in wp.items():
        if "p95_ms" in found:
            lines.append(f"| who paid, {label} (query + JSON) | p50 {found['p50_ms']:.1f} ms,"
                         f" p95 {found['p95_ms']:.1f} ms | p95 ≤ 50 ms |")
        else:
            lines.append(f"| who paid, {label} | {found['ms']:.0f} ms ({found['bytes']:,} bytes) | |")
    return "\n".join(lines)


def runner_read_rate(ledger: Ledger, batch: int) -> tuple[int, float]:
    """The runner's own reader (binary, view topics only) with no decoding: the
    floor of the catch-up, in log positions per second."""
    from projections.batch import read_batch

    position, started, newest = 0, time.perf_counter(), ledger.store.recorder.max_notification_id() or 0
    while position < newest:
        position = read_batch(ledger.store.recorder, position, batch).reached
    return position, time.perf_counter() - started


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def who_paid_latency(ledger: Ledger, event_id: str, samples: int) -> dict[str, dict[str, float]]:
    from projections import who_paid_query

    with ledger.db.transaction() as conn:
        seqs = [r[0] for r in conn.execute(
            "SELECT seq FROM projections.who_paid WHERE event_id = %s ORDER BY seq", (uuid.UUID(event_id),)
        ).fetchall()]
    from projections.paging import encode_cursor

    results = {}
    rng = random.Random(3)
    for label, limit, status in (("page of 100", 100, None), ("page of 500", 500, None),
                                 ("page of 100, ?status=paid", 100, "paid"),
                                 ("page of 100, ?status=refund_due", 100, "refund_due")):
        timings = []
        for i in range(samples):
            after = None if i % 10 == 0 else encode_cursor(rng.choice(seqs))
            started = time.perf_counter()
            page = who_paid_query.page(ledger, event_id, scope=ANYONE, status=status, after=after, limit=limit)
            json.dumps(page.as_dict())
            timings.append((time.perf_counter() - started) * 1000)
        results[label] = {"p50_ms": statistics.median(timings), "p95_ms": percentile(timings, 95),
                          "max_ms": max(timings)}
    started = time.perf_counter()
    size = sum(len(chunk) for chunk in who_paid_query.csv_lines(ledger, event_id, scope=ANYONE))
    results["full CSV export"] = {"ms": (time.perf_counter() - started) * 1000, "bytes": size}
    return results


def rebuild_child(url: str, tmp: str) -> None:
    """Runs in a fresh process so its peak RSS is the rebuild's alone."""
    from projections.rebuild import rebuild

    ledger = bootstrap(_settings(Path(tmp)), url=url, pool_size=4)
    result = rebuild(ledger, progress=False)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": result.seconds, "events": result.events, "rate": result.rate,
                      "peak_rss_mb": peak_kb / 1024}))
    ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--participants", type=int, default=10_000, help="registrations of the big event")
    parser.add_argument("--batch-size", type=int, default=0, help="runner batch size (0 = default)")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rebuild-child", nargs=2, metavar=("URL", "TMP"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rebuild_child:
        rebuild_child(*args.rebuild_child)
        return

    from projections.runner import DEFAULT_BATCH_SIZE, ProjectionRunner
    from tests.support.postgres import TestServer

    batch = args.batch_size or DEFAULT_BATCH_SIZE
    tmp = tempfile.mkdtemp(prefix="bench-projections-")
    server = TestServer()
    url = server.new_database("bench")
    ledger = bootstrap(_settings(Path(tmp)), url=url, pool_size=4)
    figures: dict[str, Any] = {"events": args.events, "batch_size": batch, "cpus": os.cpu_count(),
                               "load_avg_at_start": round(os.getloadavg()[0], 2)}

    started = time.perf_counter()
    big = Generator(ledger).run(args.events, args.participants)
    figures["generate_s"] = round(time.perf_counter() - started, 1)
    count, seconds = raw_read_rate(ledger, batch)
    figures["stored_events"] = count
    figures["raw_read_events_per_s"] = round(count / seconds)

    count, seconds = runner_read_rate(ledger, batch)
    figures["runner_read_events_per_s"] = round(count / seconds)
    relevant = relevant_count(ledger)
    figures["relevant_events"] = relevant
    runner = ProjectionRunner(ledger, batch_size=batch)
    started = time.perf_counter()
    applied = runner.catch_up()
    seconds = time.perf_counter() - started
    figures["catch_up_s"] = round(seconds, 2)
    figures["catch_up_events_per_s"] = round(applied / seconds)
    figures["catch_up_view_events_per_s"] = round(relevant / seconds)

    child = subprocess.run(
        [sys.executable, __file__, "--rebuild-child", url, tmp], capture_output=True, text=True, check=True
    )
    rebuilt = json.loads(child.stdout.strip().splitlines()[-1])
    figures["rebuild_s"] = round(rebuilt["seconds"], 2)
    figures["rebuild_events_per_s"] = round(rebuilt["rate"])
    figures["rebuild_peak_rss_mb"] = round(rebuilt["peak_rss_mb"], 1)

    figures["who_paid"] = who_paid_latency(ledger, str(big.id), args.samples)
    figures["load_avg_at_end"] = round(os.getloadavg()[0], 2)  # other processes skew the rates
    print(json.dumps(figures, indent=2, default=lambda v: round(v, 2)))
    print(table(figures))
    ledger.close()


if __name__ == "__main__":
    main()
