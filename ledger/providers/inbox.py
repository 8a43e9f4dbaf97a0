"""The provider inbox: raw deliveries, de-duplicated facts, open checkouts.

Tables are in ``ledger/migrations/`` (0001, 0004, 0005).  Why they exist:

* **Deliveries** are counted per connection and verification result, and
  verified ones are kept raw (exact bytes, signature headers) so that finance
  can see what a provider actually sent.  Refused ones (forged, stale,
  malformed, unverifiable) are anyone's to send, so only a ring of the most
  recent is kept (``provider_rejected_deliveries``), each body cut short: a
  flood of forged requests grows a counter, never a table (issue 11).
* **Facts** make every route to a provider fact -- webhook, the participant's
  return, the reconciler, a capture answer -- harmless to repeat: the first
  claim wins, later ones see the fact processed.  Commands are idempotent in
  the service as well, so a claim raced by two threads still books once.
* **Checkouts** are written as soon as the provider answers, before the ledger
  records ``CheckoutStarted``: the crash window between "the provider opened a
  session" and "the ledger knows" is closed without relying on the provider's
  idempotency keys alone (PayU has none), and the reconciler finds here every
  checkout it may have to poll.

Plain SQL on the project's pool; no event-store tables are touched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb

from ledger.database import Database
from ledger.money import Money
from ledger.providers.base import Notification

#: Headers worth keeping: how the delivery was signed and by whom.  Nothing
#: else (cookies, proxies' headers) is stored.
KEPT_HEADERS = frozenset(
    {
        "content-type",
        "user-agent",
        "stripe-signature",
        "openpayu-signature",
        "x-openpayu-signature",
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
        "paypal-cert-url",
        "paypal-auth-algo",
    }
)


#: Refused deliveries kept per connection and verification result (the most
#: recent), and how much of each: enough for an operator to see what is being
#: sent, never more.
REJECTED_SAMPLE = 50
SAMPLE_BODY_BYTES = 1024  # a row stays below PostgreSQL's TOAST threshold
SAMPLE_HEADER_CHARS = 512
MAX_DETAIL_CHARS = 500


def kept_headers(headers: Mapping[str, str], *, max_chars: int | None = None) -> dict[str, str]:
    return {k.lower(): v[:max_chars] for k, v in headers.items() if k.lower() in KEPT_HEADERS}


# -- deliveries ---------------------------------------------------------------


def record_delivery(
    db: Database,
    *,
    provider: str,
    connection_id: str,
    headers: Mapping[str, str],
    body: bytes,
    verification: str,
    detail: str | None = None,
    event_ids: Sequence[str] = (),
) -> int | None:
    """Count one delivery and keep it: whole in ``provider_inbox`` when
    verified (an identical one again only counts up; returns its id), else
    truncated in its slot of the connection's ring of ``REJECTED_SAMPLE``
    (returns None)."""
    digest = hashlib.sha256(body).hexdigest()
    with db.transaction() as conn:
        counted = conn.execute(
            "INSERT INTO provider_delivery_counts (connection_id, provider, verification, deliveries, bytes) "
            "VALUES (%s, %s, %s, 1, %s) ON CONFLICT (connection_id, verification) DO UPDATE SET "
            "deliveries = provider_delivery_counts.deliveries + 1, "
            "bytes = provider_delivery_counts.bytes + EXCLUDED.bytes, last_at = now() RETURNING deliveries",
            (connection_id, provider, verification, len(body)),
        ).fetchone()
        assert counted is not None
        if verification != "verified":
            # Every column but the key changes: a HOT update, so a flood
            # rewrites the same few pages instead of adding rows.
            conn.execute(
                "INSERT INTO provider_rejected_deliveries (connection_id, verification, slot, provider, "
                "body_sha256, detail, headers, body, body_size) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (connection_id, verification, slot) DO UPDATE SET provider = EXCLUDED.provider, "
                "body_sha256 = EXCLUDED.body_sha256, detail = EXCLUDED.detail, headers = EXCLUDED.headers, "
                "body = EXCLUDED.body, body_size = EXCLUDED.body_size, received_at = now()",
                (
                    connection_id,
                    verification,
                    int(counted[0]) % REJECTED_SAMPLE,
                    provider,
                    digest,
                    None if detail is None else detail[:MAX_DETAIL_CHARS],
                    Jsonb(kept_headers(headers, max_chars=SAMPLE_HEADER_CHARS)),
                    body[:SAMPLE_BODY_BYTES],
                    len(body),
                ),
            )
            return None
        row = conn.execute(
            "INSERT INTO provider_inbox (provider, connection_id, body_sha256, verification, detail, "
            "headers, body, provider_event_ids) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (connection_id, body_sha256, verification) DO UPDATE SET "
            "deliveries = provider_inbox.deliveries + 1, last_received_at = now(), "
            "headers = EXCLUDED.headers RETURNING id",
            (provider, connection_id, digest, verification, detail, Jsonb(kept_headers(headers)), body,
             list(event_ids)),
        ).fetchone()
    assert row is not None
    return int(row[0])


def delivery_counts(db: Database, connection_id: str) -> dict[str, int]:
    """Deliveries received through a connection's endpoint, by verification
    result (``verified``, ``invalid_signature``, ``unverifiable``, ``malformed``)."""
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT verification, deliveries FROM provider_delivery_counts WHERE connection_id = %s",
            (connection_id,),
        ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def mark_delivery_processed(db: Database, inbox_id: int) -> None:
    with db.transaction() as conn:
        conn.execute("UPDATE provider_inbox SET processed_at = now() WHERE id = %s", (inbox_id,))


# -- facts ----------------------------------------------------------------------


@dataclass(frozen=True)
class FactState:
    """Where a claimed fact stands: ``processed`` facts must not be applied again."""

    new: bool
    processed: bool
    outcome: str | None


def claim_fact(
    db: Database, *, connection_id: str, notification: Notification, source: str, inbox_id: int | None
) -> FactState:
    n = notification
    amount = n.amount
    with db.transaction() as conn:
        inserted = conn.execute(
            "INSERT INTO provider_facts (provider, provider_event_id, connection_id, source, inbox_id, kind, "
            "registration_id, reference, amount_minor, currency, raw_type) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING 1",
            (
                n.provider,
                n.provider_event_id,
                connection_id,
                source,
                inbox_id,
                n.kind,
                n.registration_id,
                n.reference,
                amount.minor if amount else None,
                amount.currency if amount else None,
                n.raw_type,
            ),
        ).fetchone()
        if inserted:
            return FactState(new=True, processed=False, outcome=None)
        row = conn.execute(
            "SELECT processed_at IS NOT NULL, outcome FROM provider_facts "
            "WHERE provider = %s AND connection_id = %s AND provider_event_id = %s",
            (n.provider, connection_id, n.provider_event_id),
        ).fetchone()
    assert row is not None
    return FactState(new=False, processed=bool(row[0]), outcome=row[1])


def finish_fact(db: Database, *, connection_id: str, notification: Notification, outcome: str, processed: bool) -> None:
    """Note what the fact led to; ``processed=False`` leaves it to be retried."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE provider_facts SET outcome = %s, attempts = attempts + 1, "
            "processed_at = CASE WHEN %s THEN now() ELSE NULL END "
            "WHERE provider = %s AND connection_id = %s AND provider_event_id = %s",
            (outcome, processed, notification.provider, connection_id, notification.provider_event_id),
        )


def unprocessed_facts(
    db: Database,
    *,
    registration_id: str | None = None,
    limit: int = 100,
    min_age: timedelta = timedelta(0),
    max_attempts: int = 1_000_000,
) -> list[tuple[str, Notification]]:
    """Facts claimed but not yet applied (deferred, or interrupted by a crash),
    oldest first, as ``(connection_id, notification)``."""
    with db.transaction() as conn:
        rows = conn.execute(
            "SELECT connection_id, provider, provider_event_id, kind, registration_id, reference, "
            "amount_minor, currency, raw_type FROM provider_facts "
            "WHERE processed_at IS NULL AND (%s::text IS NULL OR registration_id = %s) "
            "AND received_at <= now() - %s AND attempts < %s ORDER BY received_at LIMIT %s",
            (registration_id, registration_id, min_age, max_attempts, limit),
        ).fetchall()
    return [(row[0], _notification(row[1:])) for row in rows]


def _notification(row: Sequence[Any]) -> Notification:
    provider, event_id, kind, registration_id, reference, amount_minor, currency, raw_type = row
    amount = Money(int(amount_minor), str(currency)) if amount_minor is not None else None
    return Notification(
        provider=provider,
        provider_event_id=event_id,
        kind=kind,
        registration_id=registration_id,
        reference=reference,
        amount=amount,
        raw_type=raw_type,
    )


# -- checkouts ------------------------------------------------------------------


@dataclass(frozen=True)
class CheckoutRow:
    registration_id: str
    provider: str
    connection_id: str
    organizer_id: str
    reference: str
    url: str
    #: When the checkout stops taking money and its seat stops being held (R20).
    expires_at: datetime | None = None


_CHECKOUT_COLUMNS = "registration_id, provider, connection_id, organizer_id, reference, url, expires_at"


def save_checkout(db: Database, row: CheckoutRow, *, steady_poll: timedelta | None = None) -> CheckoutRow:
    """Keep the first checkout opened for a registration and return the one
    kept: two concurrent starts agree on a single session.  ``steady_poll``:
    the connection receives no webhooks, so the reconciler polls this checkout
    at that interval from now on, without backoff (R1)."""
    seconds = None if steady_poll is None else max(1, int(steady_poll.total_seconds()))
    with db.transaction() as conn:
        conn.execute(
            f"INSERT INTO provider_checkouts ({_CHECKOUT_COLUMNS}, steady_poll_seconds) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (registration_id) DO NOTHING",
            (row.registration_id, row.provider, row.connection_id, row.organizer_id, row.reference, row.url,
             row.expires_at, seconds),
        )
    found = find_checkout(db, row.registration_id)
    assert found is not None
    return found


def find_checkout(db: Database, registration_id: str) -> CheckoutRow | None:
    with db.transaction() as conn:
        row = conn.execute(
            f"SELECT {_CHECKOUT_COLUMNS} FROM provider_checkouts WHERE registration_id = %s",
            (registration_id,),
        ).fetchone()
    return CheckoutRow(*row) if row else None


def find_checkout_by_reference(db: Database, provider: str, reference: str) -> CheckoutRow | None:
    with db.transaction() as conn:
        row = conn.execute(
            f"SELECT {_CHECKOUT_COLUMNS} FROM provider_checkouts WHERE provider = %s AND reference = %s "
            "ORDER BY created_at LIMIT 1",
            (provider, reference),
        ).fetchone()
    return CheckoutRow(*row) if row else None


def settle_checkout(db: Database, registration_id: str, settled_as: str, *, reference: str | None = None) -> None:
    """No more polling for this checkout: the provider's answer is final.
    With ``reference``, only if that is the checkout's (an old session's
    expiry must not stop polling the current one)."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE provider_checkouts SET settled_at = now(), settled_as = %s "
            "WHERE registration_id = %s AND settled_at IS NULL AND (%s::text IS NULL OR reference = %s)",
            (settled_as, registration_id, reference, reference),
        )


def claim_due_checkouts(
    db: Database,
    *,
    limit: int,
    first_delay: timedelta,
    min_interval: timedelta,
    max_interval: timedelta,
) -> list[CheckoutRow]:
    """Open checkouts due for a poll, each pushed back (exponential backoff)
    in the same statement.  ``SKIP LOCKED`` lets several reconcilers share the
    work; one that dies mid-poll simply polls again when the row is next due.
    A checkout with a steady interval (no webhooks, R1) is due that long after
    its creation and after each poll, never backed off."""
    steady = "make_interval(secs => steady_poll_seconds)"
    with db.transaction() as conn:
        rows = conn.execute(
            "UPDATE provider_checkouts c SET polls = c.polls + 1, next_poll_at = now() + COALESCE("
            "make_interval(secs => c.steady_poll_seconds), "
            "LEAST(%(max)s::interval, %(min)s::interval * power(2, LEAST(c.polls, 20)))) "
            "FROM (SELECT registration_id FROM provider_checkouts "
            f"      WHERE settled_at IS NULL AND COALESCE(next_poll_at, created_at + COALESCE({steady}, %(first)s))"
            " <= now() "
            f"      ORDER BY COALESCE(next_poll_at, created_at + COALESCE({steady}, %(first)s)) LIMIT %(limit)s "
            "      FOR UPDATE SKIP LOCKED) due "
            "WHERE c.registration_id = due.registration_id "
            "RETURNING c.registration_id, c.provider, c.connection_id, c.organizer_id, c.reference, c.url, "
            "c.expires_at",
            {"max": max_interval, "min": min_interval, "first": first_delay, "limit": limit},
        ).fetchall()
    return [CheckoutRow(*row) for row in rows]


#: Status-check windows that ended longer ago than this are deleted, at most
#: ``STATUS_CHECK_PURGE`` per claim: the table holds about a day of returns.
STATUS_CHECK_KEPT = timedelta(days=1)
STATUS_CHECK_PURGE = 100


def claim_status_check(
    db: Database, registration_id: str, reference: str, *, per_window: int, window: timedelta
) -> bool:
    """True when the provider was asked about this checkout fewer than
    ``per_window`` times in the current ``window`` (and counts this call);
    False otherwise.  One statement, so concurrent callers in any process
    never exceed the bound together."""
    key = f"{registration_id}:{reference}"[:300]
    with db.transaction() as conn:
        row = conn.execute(
            "INSERT INTO provider_status_checks AS c (checkout, calls, window_ends) "
            "VALUES (%(key)s, 1, now() + %(window)s) "
            "ON CONFLICT (checkout) DO UPDATE SET "
            "calls = CASE WHEN c.window_ends <= now() THEN 1 ELSE c.calls + 1 END, "
            "window_ends = CASE WHEN c.window_ends <= now() THEN EXCLUDED.window_ends ELSE c.window_ends END "
            "WHERE c.window_ends <= now() OR c.calls < %(per_window)s RETURNING 1",
            {"key": key, "window": window, "per_window": per_window},
        ).fetchone()
        if row is not None:
            conn.execute(
                "DELETE FROM provider_status_checks WHERE checkout IN (SELECT checkout FROM provider_status_checks "
                "WHERE window_ends < now() - %s LIMIT %s FOR UPDATE SKIP LOCKED)",
                (STATUS_CHECK_KEPT, STATUS_CHECK_PURGE),
            )
    return row is not None


def poll_soon(db: Database, registration_ids: Sequence[str]) -> None:
    """Due at the reconciler's next pass: these registrations were closed
    early (rejected, event cancelled), so their open checkouts are to be made
    unpayable at the provider without waiting for the poll backoff (R20)."""
    with db.transaction() as conn:
        conn.execute(
            "UPDATE provider_checkouts SET next_poll_at = now() "
            "WHERE registration_id = ANY(%s) AND settled_at IS NULL",
            (list(registration_ids),),
        )


def checkout_is_open(db: Database, registration_id: str) -> bool:
    """Whether the registration's checkout is still unsettled."""
    with db.transaction() as conn:
        found = conn.execute(
            "SELECT 1 FROM provider_checkouts WHERE registration_id = %s AND settled_at IS NULL",
            (registration_id,),
        ).fetchone()
    return found is not None


def lapsed_checkouts(db: Database, *, now: datetime, limit: int) -> list[CheckoutRow]:
    """Open checkouts whose seat hold has ended (R20), oldest first: the
    reconciler makes each unpayable at the provider, then settles it."""
    with db.transaction() as conn:
        rows = conn.execute(
            f"SELECT {_CHECKOUT_COLUMNS} FROM provider_checkouts "
            "WHERE settled_at IS NULL AND expires_at <= %s ORDER BY expires_at LIMIT %s",
            (now, limit),
        ).fetchall()
    return [CheckoutRow(*row) for row in rows]


def abandon_stale_checkouts(db: Database, *, older_than: timedelta) -> int:
    """Stop polling checkouts no provider keeps open that long (Stripe
    sessions last 24 h at most, PayU and PayPal orders less)."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "UPDATE provider_checkouts SET settled_at = now(), settled_as = 'abandoned' "
            "WHERE settled_at IS NULL AND created_at < now() - %s",
            (older_than,),
        )
        return cursor.rowcount
