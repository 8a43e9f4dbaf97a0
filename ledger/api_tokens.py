"""Bearer tokens for the API: random, shown once, stored only as a SHA-256.

A token is 32 random bytes (256 bits), so a plain hash is enough: there is
nothing to brute-force that a slow hash would protect.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from ledger.database import Database
from ledger.errors import ValidationFailed
from ledger.idempotency_store import IdempotencyStore, KeySlot

ROLES = ("admin", "finance", "organizer")
PREFIX = "ldg_"


@dataclass(frozen=True)
class Principal:
    role: str
    organizer_id: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    db: Database, *, role: str, organizer_id: str | None = None, label: str = "",
    once: tuple[KeySlot, str] | None = None,
) -> str:
    """A new token (shown once).  ``once`` = (Idempotency-Key slot, request
    fingerprint): the key records the token's hash in the token's own
    transaction, and a retry with the key (a crash or a lost answer: nobody
    saw that token) revokes it and issues a new one -- one live token per key."""
    if role not in ROLES:
        raise ValidationFailed({"role": [f"must be one of {', '.join(ROLES)}"]})
    if role == "organizer" and not organizer_id:
        raise ValidationFailed({"organizer_id": ["an organizer token names its organizer"]})
    if role != "organizer":
        organizer_id = None
    token = PREFIX + secrets.token_urlsafe(32)
    with db.transaction() as conn:
        if once is not None:
            earlier = IdempotencyStore(db).reissue(conn, *once).get("token_hash")
            if earlier:
                conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
                             (earlier,))
        conn.execute(
            "INSERT INTO api_tokens (token_hash, role, organizer_id, label) VALUES (%s, %s, %s, %s)",
            (hash_token(token), role, organizer_id, label),
        )
        if once is not None:
            IdempotencyStore.record_reissue(conn, once[0], {"token_hash": hash_token(token)})
    return token


def lookup(db: Database, token: str) -> Principal | None:
    if not token.startswith(PREFIX) or len(token) > 200:
        return None
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT role, organizer_id FROM api_tokens WHERE token_hash = %s AND revoked_at IS NULL",
            (hash_token(token),),
        ).fetchone()
    return Principal(role=row[0], organizer_id=row[1]) if row else None


def revoke(db: Database, token: str) -> bool:
    with db.transaction() as conn:
        cur = conn.execute(
            "UPDATE api_tokens SET revoked_at = now() WHERE token_hash = %s AND revoked_at IS NULL",
            (hash_token(token),),
        )
        return cur.rowcount == 1
