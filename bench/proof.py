"""Benchmark of the proof core (issue 16: R23).

Starts its own embedded PostgreSQL in a temp dir, writes N valid events (the
generator of bench/projections.py: real aggregates, registrations with
personal data, stored by COPY like the recorder), (the proof tables come with the migrations),
then measures in the same run, each beside a raw baseline:

* **sealing** (``Sealer.catch_up`` from 0: read, encode, hash, chain, tree,
  COPY, commit per batch) vs the raw notification reads it does, and vs those
  reads plus one SHA-256 per event;
* **verify** (``verify_log``: everything recomputed, merged with the stored
  hashes) vs a raw streaming SELECT of the same rows, and raw SHA-256 of the
  same bytes;
* **write path**: commands per second (plan changes through the service, 4
  threads, rounds alternating) with the sealer following the log in a process
  of its own, as under ``ledger run``, vs without it (the sealer is
  asynchronous: it costs the write path only CPU and I/O);
* **inclusion proof** latency on the N-event log (``queries.inclusion_proof``:
  leaf lookup, one batched node SELECT, the event's encoding) vs a raw primary-
  key SELECT of the same event; and consistency proof latency.

    .venv/bin/python bench/proof.py [--events 1000000] [--samples 2000]

Targets (issue 16): verify ≥ 100,000 events/s; inclusion proof p95 ≤ 20 ms at 1M;
write path with proof ≥ 0.9 × without.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.projections import Generator
from entrypoints.bootstrap import Ledger, bootstrap
from ledger.config import Settings
from ledger.log_follower import read_batch
from ledger.proof import canonical, checkpoints, queries
from ledger.proof.sealer import DEFAULT_BATCH_SIZE, Sealer
from ledger.proof.verify import DEFAULT_BATCH_SIZE as VERIFY_BATCH
from ledger.proof.verify import verify_log
from tests.support.postgres import TestServer


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def raw_reads(ledger: Ledger, hash_too: bool) -> float:
    """Seconds to read every notification the way the sealer's follower does
    (and, with ``hash_too``, one SHA-256 of each event's canonical bytes)."""
    started, position = time.perf_counter(), 0
    while True:
        batch = read_batch(ledger.store.recorder, position, DEFAULT_BATCH_SIZE)
        if not batch.notifications:
            return time.perf_counter() - started
        if hash_too:
            for n in batch.notifications:
                hashlib.sha256(canonical.encode_notification(n)).digest()
        position = batch.reached


def raw_stream(ledger: Ledger) -> tuple[float, float, int]:
    """(seconds to stream the rows verify reads, seconds to SHA-256 their
    canonical bytes once, bytes hashed)."""
    import psycopg

    encodings = []
    started = time.perf_counter()
    with psycopg.connect(ledger.database_url) as conn, conn.cursor(name="raw", binary=True) as cursor:
        cursor.itersize = VERIFY_BATCH
        cursor.execute("SELECT notification_id, uuid_send(originator_id), originator_version,"
                       " convert_to(topic, 'UTF8'), state FROM ledger_events ORDER BY notification_id")
        while rows := cursor.fetchmany(VERIFY_BATCH):
            encodings.extend(canonical.encode(*row) for row in rows)
    read = time.perf_counter() - started
    started = time.perf_counter()
    for encoding in encodings:
        hashlib.sha256(encoding).digest()
    return read, time.perf_counter() - started, sum(map(len, encodings))


def sealer_child(url: str, data_dir: str) -> None:
    """``--sealer-child``: follow the log as ``ledger worker sealer`` would (a
    process of its own), until SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    settings = Settings.from_env({"LEDGER_DATA_DIR": data_dir, "LEDGER_SECRET_KEY": "44" * 32})
    ledger = bootstrap(settings, url=url, pool_size=2)
    key = checkpoints.load_signing_key(settings.data_dir, env={})
    sealer = Sealer(ledger.db, ledger.store.recorder, url, signer=checkpoints.CheckpointSigner(key))
    print("ready", flush=True)
    try:
        sealer.run(stop)
    finally:
        ledger.close()


def write_rate(ledger: Ledger, organizers: list[str], seconds: float, with_sealer: bool) -> float:
    """Commands per second from 4 threads for ``seconds``, with the sealer
    following the log in a process of its own (caught up first) or not."""
    done = threading.Event()
    counts = [0] * 4
    child = None
    if with_sealer:
        Sealer(ledger.db, ledger.store.recorder, ledger.database_url).catch_up()
        child = subprocess.Popen(
            [sys.executable, __file__, "--sealer-child", ledger.database_url, str(ledger.settings.data_dir)],
            stdout=subprocess.PIPE, text=True,
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"

    def write(slot: int) -> None:
        rng = random.Random(slot)
        while not done.is_set():
            ledger.service.change_plan(rng.choice(organizers), rng.randrange(10, 5000))
            counts[slot] += 1

    writers = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    started = time.perf_counter()
    for thread in writers:
        thread.start()
    time.sleep(seconds)
    done.set()
    for thread in writers:
        thread.join()
    elapsed = time.perf_counter() - started
    if child is not None:
        time.sleep(0.5)  # the sealing window
        with ledger.db.transaction() as conn:
            behind = int(conn.execute("SELECT count(*) FROM ledger_events WHERE notification_id > %s",
                                      (queries.seal_state(conn).position,)).fetchone()[0])  # type: ignore[index]
        assert behind == 0, f"the sealer is {behind} events behind"
        child.terminate()
        child.wait(timeout=30)
    return sum(counts) / elapsed


def proof_latency(ledger: Ledger, size: int, samples: int) -> dict[str, list[float]]:
    rng = random.Random(16)
    timings: dict[str, list[float]] = {"inclusion": [], "raw": [], "consistency": []}
    with ledger.db.transaction() as conn:
        positions = [int(r[0]) for r in conn.execute(
            "SELECT position FROM ledger_event_hashes WHERE leaf_index = ANY(%s)",
            ([rng.randrange(size) for _ in range(samples)],)).fetchall()]
    for position in positions:
        with ledger.db.transaction() as conn:
            started = time.perf_counter()
            queries.inclusion_proof(conn, position, size)
            timings["inclusion"].append(time.perf_counter() - started)
            started = time.perf_counter()
            conn.execute("SELECT originator_id, originator_version, topic, state FROM ledger_events"
                         " WHERE notification_id = %s", (position,)).fetchone()
            timings["raw"].append(time.perf_counter() - started)
            started = time.perf_counter()
            queries.consistency_proof(conn, rng.randrange(1, size), size)
            timings["consistency"].append(time.perf_counter() - started)
    return timings


def main() -> None:
    if sys.argv[1:2] == ["--sealer-child"]:
        sealer_child(sys.argv[2], sys.argv[3])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--write-seconds", type=float, default=5.0, help="per write-path round (6 rounds)")
    args = parser.parse_args()
    server = TestServer()
    url = server.new_database("proof")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"LEDGER_DATA_DIR": str(Path(tmp) / "data"), "LEDGER_SECRET_KEY": "44" * 32})
        ledger = bootstrap(settings, url=url, pool_size=4)
        try:
            started = time.perf_counter()
            Generator(ledger).run(args.events, big_event=1000)
            with ledger.db.transaction() as conn:
                count = int(conn.execute("SELECT count(*) FROM ledger_events").fetchone()[0])  # type: ignore[index]
            print(f"generated {count:,} events in {time.perf_counter() - started:.1f} s")

            raw_reads(ledger, hash_too=False)  # warm the cache: every figure below reads warm
            read_only = raw_reads(ledger, hash_too=False)
            read_hash = raw_reads(ledger, hash_too=True)
            started = time.perf_counter()
            sealed = Sealer(ledger.db, ledger.store.recorder, ledger.database_url).catch_up()
            seal_seconds = time.perf_counter() - started
            assert sealed == count
            signer = checkpoints.CheckpointSigner(checkpoints.load_signing_key(settings.data_dir, env={}))
            with ledger.db.transaction() as conn:
                checkpoints.produce(conn, signer)

            stream, hashing, hashed_bytes = raw_stream(ledger)
            report = verify_log(ledger.database_url, trusted_keys=[signer.public_key])
            assert report.ok, report.problem
            timings = proof_latency(ledger, count, args.samples)
            organizers = [str(ledger.service.register_organizer(name=f"W{i}", country="PL", plan_size=10).id)
                          for i in range(64)]
            writes: dict[str, list[float]] = {"off": [], "on": []}
            for mode in ("off", "on") * 3:
                writes[mode].append(write_rate(ledger, organizers, args.write_seconds, mode == "on"))
        finally:
            ledger.close()

    def rate(seconds: float) -> str:
        return f"{count / seconds:>12,.0f} events/s"

    print(f"\nlog: {count:,} events, {hashed_bytes / count:.0f} canonical bytes per event on average")
    print("sealing")
    print(f"  sealer catch-up (hash, chain, tree, COPY)  {rate(seal_seconds)}   ({seal_seconds:.1f} s)")
    print(f"  raw: notification reads alone              {rate(read_only)}")
    print(f"  raw: reads + one SHA-256 per event         {rate(read_hash)}")
    print("verify (target >= 100,000 events/s)")
    print(f"  verify_log (recompute all, compare)        {rate(report.seconds)}   ({report.seconds:.1f} s)")
    print(f"  raw: streaming SELECT of the same rows     {rate(stream)}")
    print(f"  raw: one SHA-256 of the same bytes         {rate(hashing)}")
    off, on = statistics.mean(writes["off"]), statistics.mean(writes["on"])
    print("write path (target: with the sealer >= 0.9 x without)")
    print(f"  commands/s with the sealer following       {on:>12,.0f}   ({on / off:.2f} x)")
    print(f"  raw: commands/s without it                 {off:>12,.0f}")
    print(f"proofs on the {count:,}-event log, {args.samples} samples (target inclusion p95 <= 20 ms)")
    for name, label in (("inclusion", "inclusion proof"), ("raw", "raw: SELECT the event by PK"),
                        ("consistency", "consistency proof")):
        values = [v * 1000 for v in timings[name]]
        print(f"  {label:<40} p50 {statistics.median(values):6.2f} ms   p95 {percentile(values, 0.95):6.2f} ms"
              f"   p99 {percentile(values, 0.99):6.2f} ms")


if __name__ == "__main__":
    main()
