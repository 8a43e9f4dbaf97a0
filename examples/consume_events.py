"""A consumer of the ledger's Kafka stream, for other teams to copy.

It keeps a running total of money received and refunded per organizer and
currency in SQLite.  The pattern is what matters:

* a **consumer group** (``--group``): partitions are shared between instances,
  and a restarted instance continues after the last committed offset;
* **idempotent effects**: the event ``id`` goes into ``processed`` in the *same*
  SQLite transaction as the effect, so an event delivered twice (the relay may
  re-send after a crash, or republish everything after the broker lost its
  data) is applied once;
* **commit offsets after** the effect is durable: a crash in between re-delivers,
  which the ``processed`` table absorbs.  At-least-once + idempotent = exactly
  once in effect.

Only ``kafka-python`` is needed (no ledger code)::

    python examples/consume_events.py --bootstrap 127.0.0.1:9092 --group revenue
"""

from __future__ import annotations

import argparse
import json
import sqlite3

from kafka import KafkaConsumer

SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS revenue (
    organizer_id TEXT, currency TEXT,
    received_minor INTEGER NOT NULL DEFAULT 0, refunded_minor INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (organizer_id, currency)
);
"""


def apply(db: sqlite3.Connection, event: dict) -> bool:
    """Apply one event exactly once; False if it was seen before."""
    with db:  # one transaction: the id and the effect commit together
        if db.execute("INSERT OR IGNORE INTO processed VALUES (?)", (event["id"],)).rowcount == 0:
            return False
        data, kind = event["data"], event["type"]
        if kind in ("PaymentRecorded", "RefundRecorded", "RefundFailed"):
            column = "received_minor" if kind == "PaymentRecorded" else "refunded_minor"
            # A failed refund never returned its money: it undoes its RefundRecorded.
            sign = -1 if kind == "RefundFailed" else 1
            db.execute(
                "INSERT INTO revenue (organizer_id, currency) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (event["organizer_id"], data["currency"]),
            )
            db.execute(
                f"UPDATE revenue SET {column} = {column} + ? WHERE organizer_id = ? AND currency = ?",
                (sign * data["amount_minor"], event["organizer_id"], data["currency"]),
            )
        # Unknown types are ignored on purpose: new ones may appear (docs/events.md).
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="ledger.events")
    parser.add_argument("--group", default="revenue-example")
    parser.add_argument("--db", default="revenue.sqlite3")
    args = parser.parse_args()

    db = sqlite3.connect(args.db)
    db.executescript(SCHEMA)
    consumer = KafkaConsumer(
        args.topic, bootstrap_servers=args.bootstrap, group_id=args.group,
        enable_auto_commit=False, auto_offset_reset="earliest",
        # Apache Kafka's minimum; against the embedded Tansu broker the first
        # join takes session_timeout_ms / 2.
        session_timeout_ms=6000, heartbeat_interval_ms=2000,
    )
    try:
        while True:
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    event = json.loads(record.value)
                    fresh = apply(db, event)
                    print(("applied " if fresh else "duplicate, skipped ") + f"{event['type']} {event['id']}")
            consumer.commit()  # only after the effects above are committed
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close(autocommit=False)
        db.close()


if __name__ == "__main__":
    main()
