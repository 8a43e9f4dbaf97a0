"""The one idempotency store: at most one run per (credential, key).

Used by the API's ``Idempotency-Key`` header (``api.idempotency``) and by the
pages' once-only forms (``api.pages.submissions``); each adds only its own
transport (headers, form fields, what a request's fingerprint covers, how an
outcome is shown).  The rows live in ``idempotency_keys`` (``ledger/schema.sql``).

The state machine of one key:

* **claim** — a row ``in_progress`` is inserted *before* the command runs, so
  a concurrent duplicate finds it, waits (at most ``wait_for_first`` seconds)
  and then replays, or is told the first is still busy: it never runs twice;
* **complete** — the outcome (status, a few headers, body bytes) is stored and
  the row becomes ``done``; a retry with the same fingerprint within
  ``replay_window`` gets that outcome back, a different fingerprint is refused;
* **release** — a refused or crashed command deletes its claim, so the caller
  may try again with the same key;
* **take over** — a claim left ``in_progress`` longer than ``stale_claim`` (the
  process died between command and ``complete``), or any row older than
  ``replay_window``, is claimed afresh by the next request with that key.

``complete`` and ``release`` run on a connection the caller passes in, so the
outcome can be written in the same transaction as the command's own effects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    import psycopg

    from ledger.database import Database

REPLAY_WINDOW = timedelta(hours=24)
#: Longer than any command may take: a younger claim is assumed to be running.
STALE_CLAIM = timedelta(seconds=60)
#: How long a duplicate waits for the first request before it is told "busy".
WAIT_FOR_FIRST = 5.0
_POLL_INTERVAL = 0.05


@dataclass(frozen=True)
class KeySlot:
    """One idempotency key as seen by one credential (keys of different
    credentials never meet)."""

    credential: str
    key: str


@dataclass(frozen=True)
class Outcome:
    """What the first run answered, replayed as is."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class ClaimResult(Enum):
    CLAIMED = "claimed"  #: run the command, then ``complete`` or ``release``
    DONE = "done"  #: already done: replay ``Claim.outcome``
    REUSED = "reused"  #: the key was used with a different fingerprint: refuse
    BUSY = "busy"  #: a first run still holds the key after the bounded wait


@dataclass(frozen=True)
class Claim:
    result: ClaimResult
    outcome: Outcome | None = None


class IdempotencyStore:
    """Claims, outcomes and take-overs of idempotency keys in PostgreSQL.

    Guarantees: for one ``KeySlot`` at most one caller holds a claim at a time
    (the primary key and ``SELECT … FOR UPDATE`` serialise them); ``claim``
    blocks at most ``wait_for_first`` seconds plus one poll interval.
    """

    def __init__(
        self, db: Database, *, replay_window: timedelta = REPLAY_WINDOW,
        stale_claim: timedelta = STALE_CLAIM, wait_for_first: float = WAIT_FOR_FIRST,
    ) -> None:
        self.db = db
        self.replay_window = replay_window
        self.stale_claim = stale_claim
        self.wait_for_first = wait_for_first

    def claim(self, slot: KeySlot, fingerprint: str) -> Claim:
        """Claim ``slot`` for a request with this ``fingerprint`` (a hash of
        what makes two requests "the same"), or say why not."""
        deadline = time.monotonic() + self.wait_for_first
        while True:
            with self.db.transaction() as conn:
                if conn.execute(
                    "INSERT INTO idempotency_keys (credential, key, request_hash, state) "
                    "VALUES (%s, %s, %s, 'in_progress') ON CONFLICT DO NOTHING RETURNING 1",
                    (slot.credential, slot.key, fingerprint),
                ).fetchone():
                    return Claim(ClaimResult.CLAIMED)
                row = conn.execute(
                    "SELECT request_hash, state, status, headers, body, "
                    "now() - created_at AS age FROM idempotency_keys "
                    "WHERE credential = %s AND key = %s FOR UPDATE",
                    (slot.credential, slot.key),
                ).fetchone()
                if row is None:  # released between our INSERT and SELECT: try again
                    continue
                stored_fingerprint, state, status, headers, body, age = row
                if age > self.replay_window or (state == "in_progress" and age > self.stale_claim):
                    self._take_over(conn, slot, fingerprint)
                    return Claim(ClaimResult.CLAIMED)
                if stored_fingerprint != fingerprint:
                    return Claim(ClaimResult.REUSED)
                if state == "done":
                    return Claim(ClaimResult.DONE, Outcome(status, dict(headers or {}), bytes(body or b"")))
            if time.monotonic() > deadline:
                return Claim(ClaimResult.BUSY)
            time.sleep(_POLL_INTERVAL)

    @staticmethod
    def _take_over(conn: psycopg.Connection[Any], slot: KeySlot, fingerprint: str) -> None:
        """The previous holder died (or its outcome expired): start afresh.
        Commands re-run after a take-over must still record nothing twice —
        callers derive created ids from the key, other commands are idempotent
        by state or by provider reference."""
        conn.execute(
            "UPDATE idempotency_keys SET request_hash = %s, state = 'in_progress', "
            "status = NULL, headers = NULL, body = NULL, created_at = now() "
            "WHERE credential = %s AND key = %s",
            (fingerprint, slot.credential, slot.key),
        )

    @staticmethod
    def complete(conn: psycopg.Connection[Any], slot: KeySlot, outcome: Outcome) -> None:
        """Store ``outcome`` for a claimed ``slot`` in the caller's transaction
        ``conn``: it is replayed once that transaction commits."""
        conn.execute(
            "UPDATE idempotency_keys SET state = 'done', status = %s, headers = %s, body = %s "
            "WHERE credential = %s AND key = %s",
            (outcome.status, Jsonb(outcome.headers), outcome.body, slot.credential, slot.key),
        )

    @staticmethod
    def release(conn: psycopg.Connection[Any], slot: KeySlot) -> None:
        """Give up an unfinished claim (the command was refused or failed), so
        the same key may be sent again.  A ``done`` outcome is never removed."""
        conn.execute(
            "DELETE FROM idempotency_keys WHERE credential = %s AND key = %s AND state = 'in_progress'",
            (slot.credential, slot.key),
        )
