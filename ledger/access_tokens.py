"""Participants' personal access tokens (R10–R12): the token in the payment
confirmation e-mail that lets a participant join later.

**Re-derivable, not re-issued.**  A token is
``base64url(HMAC-SHA256(K, "registration:" + registration_id))`` where ``K`` is a
sub-key derived from ``LEDGER_SECRET_KEY``.  That gives 256 unguessable bits
(nobody without the secret key can compute a token, even knowing registration
ids) and three properties the notify worker relies on:

* the token is never stored in clear — not in the event store, not in the
  e-mail outbox: it is computed again whenever an e-mail is composed;
* a resend (R12) carries the *same* token, so an old e-mail keeps working;
* a re-send after a crash (same Message-ID) is byte-for-byte the same e-mail.

Only ``SHA-256(token)`` is kept (table ``access_tokens`` in workers/notify.sql),
with the registration and event it opens.  SHA-256 without salt is enough
because the token itself carries 256 bits of entropy (nothing to brute-force).

Revocation is a row state (``revoked_at``): rejection or event cancellation
(R15), or a refund that closes the registration.  ``GET /v1/join/{token}``
also re-checks the registration itself, so a rejection is effective at once,
even before the notify worker has revoked the row.

Rotating ``LEDGER_SECRET_KEY`` does not invalidate tokens already issued (their
hashes stay); e-mails composed afterwards carry a new token, issued as a second
row for the same registration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

_SUBKEY_LABEL = b"webinar-ledger access tokens v1"
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def derive_token(secret_key: bytes, registration_id: str) -> str:
    """The registration's access token (43 URL-safe characters)."""
    subkey = hmac.new(secret_key, _SUBKEY_LABEL, hashlib.sha256).digest()
    mac = hmac.new(subkey, f"registration:{registration_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def hash_token(token: str) -> str:
    """What is stored and looked up: the hex SHA-256 of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def well_formed(token: str) -> bool:
    """Cheap shape check, so garbage never reaches the database."""
    return bool(_TOKEN_SHAPE.match(token))


@dataclass(frozen=True)
class Access:
    """What a valid token opens: one registration for one paid event."""

    registration_id: str
    event_id: str


def issue(
    conn: psycopg.Connection[Any], *, secret_key: bytes, registration_id: str, event_id: str,
    at: datetime,
) -> str:
    """Record the token's hash (idempotent) and return the token for the e-mail."""
    token = derive_token(secret_key, registration_id)
    conn.execute(
        "INSERT INTO access_tokens (token_hash, registration_id, event_id, issued_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (token_hash) DO NOTHING",
        (hash_token(token), registration_id, event_id, at),
    )
    return token


def revoke_registration(
    conn: psycopg.Connection[Any], registration_id: str, *, reason: str, at: datetime
) -> None:
    """Every token of one registration stops working (rejected, refunded)."""
    conn.execute(
        "UPDATE access_tokens SET revoked_at = %s, revoked_reason = %s"
        " WHERE registration_id = %s AND revoked_at IS NULL",
        (at, reason, registration_id),
    )


def revoke_event(conn: psycopg.Connection[Any], event_id: str, *, reason: str, at: datetime) -> None:
    """Every token for a cancelled event stops working (R15)."""
    conn.execute(
        "UPDATE access_tokens SET revoked_at = %s, revoked_reason = %s"
        " WHERE event_id = %s AND revoked_at IS NULL",
        (at, reason, event_id),
    )


def find(conn: psycopg.Connection[Any], token: str) -> Access | None:
    """The access a token gives, or None if unknown or revoked."""
    if not well_formed(token):
        return None
    row = conn.execute(
        "SELECT registration_id, event_id FROM access_tokens"
        " WHERE token_hash = %s AND revoked_at IS NULL",
        (hash_token(token),),
    ).fetchone()
    return Access(registration_id=row[0], event_id=row[1]) if row else None
