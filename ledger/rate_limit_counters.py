"""Fixed-window hit counters in PostgreSQL, shared by every API process.

The per-client limits of the public operations (``api/rate_limits.py``) count
here, so N API processes behind one address enforce one limit, not N.  One row
per (limit, client, operation) key: ``hits`` in the window that ends at
``expires_at``; the first hit after the window ends starts a new one in the
same statement (one round trip per limited request, no lock held between
requests).  Table in ``ledger/migrations/0002_rate_limit_counters.sql``.

Bounded: rows whose window ended are deleted, at most ``PURGE_BATCH`` at a time,
every ``PURGE_EVERY`` hits of a process -- so the table holds about one row per
client active within the longest window, however many clients ever came.
"""

from __future__ import annotations

import itertools
import threading
import time

import psycopg

from ledger.database import Database

#: What a failing counter store raises (the limiter may report or fall back).
StoreError = psycopg.Error

PURGE_EVERY = 500
PURGE_BATCH = 1000
#: Keys are built by the limiter from the limit, client address and operation;
#: anything longer is not one of ours and is cut (a row stays small).
MAX_KEY_CHARS = 300

_hits = itertools.count(1)
_purge_lock = threading.Lock()


def hit(db: Database, key: str, expiry_seconds: int, amount: int = 1) -> int:
    """Count ``amount`` hits for ``key``; returns the hits in the current window."""
    key = key[:MAX_KEY_CHARS]
    with db.transaction() as conn:
        row = conn.execute(
            "INSERT INTO rate_limit_counters (key, hits, expires_at) "
            "VALUES (%(key)s, %(amount)s, now() + make_interval(secs => %(expiry)s)) "
            "ON CONFLICT (key) DO UPDATE SET "
            "hits = CASE WHEN rate_limit_counters.expires_at <= now() THEN EXCLUDED.hits "
            "            ELSE rate_limit_counters.hits + EXCLUDED.hits END, "
            "expires_at = CASE WHEN rate_limit_counters.expires_at <= now() THEN EXCLUDED.expires_at "
            "                  ELSE rate_limit_counters.expires_at END "
            "RETURNING hits",
            {"key": key, "amount": amount, "expiry": expiry_seconds},
        ).fetchone()
    if next(_hits) % PURGE_EVERY == 0:
        purge(db)
    assert row is not None
    return int(row[0])


def hits(db: Database, key: str) -> int:
    """Hits in the current window (0 when it ended or never began)."""
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT hits FROM rate_limit_counters WHERE key = %s AND expires_at > now()", (key[:MAX_KEY_CHARS],)
        ).fetchone()
    return int(row[0]) if row else 0


def window_end(db: Database, key: str) -> float:
    """When the current window ends (epoch seconds); now when there is none."""
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM expires_at) FROM rate_limit_counters WHERE key = %s AND expires_at > now()",
            (key[:MAX_KEY_CHARS],),
        ).fetchone()
    return float(row[0]) if row else time.time()


def clear(db: Database, key: str) -> None:
    with db.transaction() as conn:
        conn.execute("DELETE FROM rate_limit_counters WHERE key = %s", (key[:MAX_KEY_CHARS],))


def clear_all(db: Database) -> int:
    with db.transaction() as conn:
        return conn.execute("DELETE FROM rate_limit_counters").rowcount


def purge(db: Database) -> int:
    """Delete up to ``PURGE_BATCH`` rows whose window ended; one process at a time."""
    if not _purge_lock.acquire(blocking=False):
        return 0
    try:
        with db.transaction() as conn:
            return conn.execute(
                "DELETE FROM rate_limit_counters WHERE key IN (SELECT key FROM rate_limit_counters "
                "WHERE expires_at <= now() ORDER BY expires_at LIMIT %s FOR UPDATE SKIP LOCKED)",
                (PURGE_BATCH,),
            ).rowcount
    finally:
        _purge_lock.release()


def healthy(db: Database) -> bool:
    try:
        with db.transaction() as conn:
            conn.execute("SELECT 1 FROM rate_limit_counters LIMIT 1")
    except psycopg.Error:
        return False
    return True
