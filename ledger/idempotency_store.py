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
* **committed** — while the claim is held, each command that writes events
  records ``"<command>:<aggregate id>" → version`` on the row *in the same
  transaction as its events* (:func:`mark_committed`, called by the event
  store's recorder with the marks the service passes down): the command's
  effects and the fact that this key produced them commit or vanish together;
* **release** — a refused or crashed command deletes its claim, so the caller
  may try again with the same key; a claim whose command already committed is
  kept (its effects exist) and is taken over below;
* **take over** — a claim left ``in_progress`` longer than ``stale_claim`` (the
  process died between command and ``complete``), or any row older than
  ``replay_window``, is claimed afresh by the next request with that key.  A
  claim that already *committed* something (stale, or released) is taken over
  with what it committed (:attr:`Claim.committed`) by the same request only,
  and the service answers those commands from the recorded versions instead
  of running them again (:func:`recorded_version`): a retry after a crash
  never runs a completed command twice.  Only a claim that committed nothing
  may be taken over by a request with another fingerprint.

The claim in progress is published to the service through the context
variable :data:`active_key` (like ``ledger.actor.current_actor``): the API and
the pages set it around the command (:func:`using_key`).

``complete`` and ``release`` run on a connection the caller passes in, so the
outcome can be written in the same transaction as the command's own effects.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from ledger.errors import IdempotencyKeyReused

if TYPE_CHECKING:
    import psycopg

    from ledger.database import Database

REPLAY_WINDOW = timedelta(hours=24)
#: Longer than any command may take: a younger claim is assumed to be running.
STALE_CLAIM = timedelta(seconds=60)
#: In ``committed``: the holder released the claim after some commands committed.
RELEASED = "released"
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
    #: CLAIMED after a crash: what the previous holder's commands committed.
    committed: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActiveKey:
    """The claim the current request (or form submission) holds."""

    slot: KeySlot
    #: ``"<command>:<aggregate id>" → version`` committed by a run that crashed.
    committed: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CommitMark:
    """One command's result, recorded on its key in its events' transaction."""

    slot: KeySlot
    entry: str  #: ``"<command>:<aggregate id>"``
    version: int  #: the aggregate's version after the change

    def write(self, cursor: Any) -> None:
        """What the recorder calls inside the events' transaction."""
        mark_committed(cursor, self)

    def add_to(self, rows: Any) -> None:
        """What the recorder calls to hand the mark to the database's save
        function (``ledger.application.SaveRows``): the same UPDATE, made
        there."""
        rows.mark(self.slot.credential, self.slot.key, self.entry, self.version)


#: The key under which the current command runs; ``None`` outside keyed requests.
active_key: ContextVar[ActiveKey | None] = ContextVar("active_idempotency_key", default=None)


@contextmanager
def using_key(key: ActiveKey | None) -> Iterator[None]:
    token = active_key.set(key)
    try:
        yield
    finally:
        active_key.reset(token)


def entry(command: str, aggregate_id: object) -> str:
    return f"{command}:{aggregate_id}"


def recorded_version(command: str, aggregate_id: object) -> int | None:
    """The version ``command`` left ``aggregate_id`` at under the active key, if
    a previous (crashed) run of this request committed it: answer from that
    version, never run the command again."""
    key = active_key.get()
    if key is None:
        return None
    version = key.committed.get(entry(command, aggregate_id))
    return int(version) if isinstance(version, int) else None


def commit_marks(command: str, aggregate_id: object, version: int) -> dict[str, Any]:
    """Keyword arguments for ``LedgerStore.save``: the recorder marks the active
    key with this result in the same transaction as the events (nothing when
    no key is active, so unkeyed saves stay exactly as they were)."""
    key = active_key.get()
    if key is None:
        return {}
    return {"idempotency_marks": (CommitMark(key.slot, entry(command, aggregate_id), version),)}


def mark_committed(cursor: Any, mark: CommitMark) -> None:
    """Record ``mark`` on its key; ``cursor`` belongs to the events' transaction."""
    cursor.execute(
        "UPDATE idempotency_keys SET committed = coalesce(committed, '{}'::jsonb) || %s "
        "WHERE credential = %s AND key = %s AND state = 'in_progress'",
        (Jsonb({mark.entry: mark.version}), mark.slot.credential, mark.slot.key),
        prepare=False,  # runs in the recorder's pipeline: never left to psycopg's threshold (ledger.application)
    )


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
                    "SELECT request_hash, state, status, headers, body, committed, "
                    "now() - created_at AS age FROM idempotency_keys "
                    "WHERE credential = %s AND key = %s FOR UPDATE",
                    (slot.credential, slot.key),
                ).fetchone()
                if row is None:  # released between our INSERT and SELECT: try again
                    continue
                stored_fingerprint, state, status, headers, body, committed, age = row
                if age > self.replay_window:  # expired: the key is free again
                    self._take_over(conn, slot, fingerprint, keep={})
                    return Claim(ClaimResult.CLAIMED)
                if state == "in_progress" and not committed and age > self.stale_claim:
                    self._take_over(conn, slot, fingerprint, keep={})  # its holder died having done nothing
                    return Claim(ClaimResult.CLAIMED)
                if stored_fingerprint != fingerprint:
                    return Claim(ClaimResult.REUSED)
                if state == "done":
                    return Claim(ClaimResult.DONE, Outcome(status, dict(headers or {}), bytes(body or b"")))
                if committed and (age > self.stale_claim or committed.get(RELEASED)):
                    # Some of its commands committed and the holder died (or
                    # released the claim after a failure): go on from there.
                    kept = {k: v for k, v in committed.items() if k != RELEASED}
                    self._take_over(conn, slot, fingerprint, keep=kept)
                    return Claim(ClaimResult.CLAIMED, committed=kept)
            if time.monotonic() > deadline:
                return Claim(ClaimResult.BUSY)
            time.sleep(_POLL_INTERVAL)

    @staticmethod
    def _take_over(
        conn: psycopg.Connection[Any], slot: KeySlot, fingerprint: str, *, keep: Mapping[str, Any]
    ) -> None:
        """The previous holder died (or its outcome expired): claim it anew,
        keeping what it committed (``keep``) so that the service answers those
        commands from the recorded versions instead of running them again.
        Commands it had not committed run now; creating commands derive their
        ids from the key, so they find what they created either way."""
        conn.execute(
            "UPDATE idempotency_keys SET request_hash = %s, state = 'in_progress', "
            "status = NULL, headers = NULL, body = NULL, committed = %s, created_at = now() "
            "WHERE credential = %s AND key = %s",
            (fingerprint, Jsonb(dict(keep)) if keep else None, slot.credential, slot.key),
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
        the same key may be sent again.  A ``done`` outcome is never removed,
        nor what a claim's commands committed: such a claim is only marked
        released, and the next request with the key takes it over at once and
        goes on from what was committed (e.g. a registration whose checkout
        the provider's outage interrupted)."""
        conn.execute(
            "DELETE FROM idempotency_keys WHERE credential = %s AND key = %s AND state = 'in_progress' "
            "AND committed IS NULL",
            (slot.credential, slot.key),
        )
        conn.execute(
            "UPDATE idempotency_keys SET committed = committed || %s "
            "WHERE credential = %s AND key = %s AND state = 'in_progress' AND committed IS NOT NULL",
            (Jsonb({RELEASED: True}), slot.credential, slot.key),
        )

    def reissue(self, conn: psycopg.Connection[Any], slot: KeySlot, fingerprint: str) -> Mapping[str, Any]:
        """For a command whose answer may never be stored (a new API token is
        shown once): lock ``slot`` in the caller's transaction ``conn`` and
        return what an earlier run under it committed (empty for a new key or
        one past ``replay_window``); the caller undoes that, runs again and
        records the new result with :meth:`record_reissue` in the same
        transaction.  A different fingerprint raises ``IdempotencyKeyReused``."""
        conn.execute(
            "INSERT INTO idempotency_keys (credential, key, request_hash, state) "
            "VALUES (%s, %s, %s, 'in_progress') ON CONFLICT DO NOTHING",
            (slot.credential, slot.key, fingerprint),
        )
        row = conn.execute(
            "SELECT request_hash, committed, now() - created_at FROM idempotency_keys "
            "WHERE credential = %s AND key = %s FOR UPDATE",
            (slot.credential, slot.key),
        ).fetchone()
        assert row is not None  # inserted or kept above, and locked
        stored_fingerprint, committed, age = row
        if age > self.replay_window:
            self._take_over(conn, slot, fingerprint, keep={})
            return {}
        if stored_fingerprint != fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request", field="Idempotency-Key"
            )
        return dict(committed or {})

    @staticmethod
    def record_reissue(conn: psycopg.Connection[Any], slot: KeySlot, committed: Mapping[str, Any]) -> None:
        """The result of a :meth:`reissue` run; the key is ``done`` with no
        stored answer (a replay is a new run that undoes this one)."""
        conn.execute(
            "UPDATE idempotency_keys SET committed = %s, state = 'done', status = 201, headers = '{}', "
            "body = NULL WHERE credential = %s AND key = %s",
            (Jsonb(dict(committed)), slot.credential, slot.key),
        )
