"""The provider inbox: raw deliveries, de-duplicated facts, open checkouts.

Tables are in ``inbox.sql``.  Why they exist:

* **Deliveries** are kept raw (exact bytes, signature headers, verification
  result) so that finance can see what a provider actually sent, including
  forged or stale requests that the ledger refused.
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
from datetime import timedelta
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


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower() in KEPT_HEADERS}


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
) -> int:
    """Keep one delivery; an identical one again only counts up.  Returns its id."""
    digest = hashlib.sha256(body).hexdigest()
    with db.transaction() as conn:
        row = conn.execute(
            "INSERT INTO provider_inbox (provider, connection_id, body_sha256, verification, detail, "
            "headers, body, provider_event_ids) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (connection_id, body_sha256, verification) DO UPDATE SET "
            "deliveries = provider_inbox.deliveries + 1, last_received_at = now(), "
            "headers = EXCLUDED.headers RETURNING id",
            (
                provider,
                connection_id,
                digest,
                verification,
                detail,
                Jsonb(kept_headers(headers)),
                body,
                list(event_ids),
            ),
        ).fetchone()
    assert row is not None
    return int(row[0])


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


_CHECKOUT_COLUMNS = "registration_id, provider, connection_id, organizer_id, reference, url"


def save_checkout(db: Database, row: CheckoutRow) -> CheckoutRow:
    """Keep the first checkout opened for a registration and return the one
    kept: two concurrent starts agree on a single session."""
    with db.transaction() as conn:
        conn.execute(
            f"INSERT INTO provider_checkouts ({_CHECKOUT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (registration_id) DO NOTHING",
            (row.registration_id, row.provider, row.connection_id, row.organizer_id, row.reference, row.url),
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
    work; one that dies mid-poll simply polls again when the row is next due."""
    with db.transaction() as conn:
        rows = conn.execute(
            "UPDATE provider_checkouts c SET polls = c.polls + 1, next_poll_at = now() + "
            "LEAST(%(max)s::interval, %(min)s::interval * power(2, LEAST(c.polls, 20))) "
            "FROM (SELECT registration_id FROM provider_checkouts "
            "      WHERE settled_at IS NULL AND COALESCE(next_poll_at, created_at + %(first)s) <= now() "
            "      ORDER BY COALESCE(next_poll_at, created_at + %(first)s) LIMIT %(limit)s "
            "      FOR UPDATE SKIP LOCKED) due "
            "WHERE c.registration_id = due.registration_id "
            "RETURNING c.registration_id, c.provider, c.connection_id, c.organizer_id, c.reference, c.url",
            {"max": max_interval, "min": min_interval, "first": first_delay, "limit": limit},
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
