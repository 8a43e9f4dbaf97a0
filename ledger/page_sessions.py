"""Server-side sign-in sessions of the web pages (issue 11 item 8).

The pages' cookie is signed, but a signed cookie alone stays valid until it
expires: a copy taken before signing out would keep working.  So the cookie
carries a random session id, and this table decides whether that session is
still on: signing out revokes it, revoking the API token it was opened with
ends it too, and it expires with the cookie.  Only the SHA-256 of the id is
stored, like the tokens themselves (``ledger.api_tokens``).

Bounded: expired and revoked rows are deleted, ``PURGE_BATCH`` at a time, at
every sign-in (itself limited per client), so the table holds about the
sessions opened within one lifetime.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from ledger.api_tokens import Principal
from ledger.database import Database

PURGE_BATCH = 500


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def open_session(db: Database, *, token_hash: str, lifetime: timedelta) -> str:
    """A new session for the token with this hash; returns its id (for the cookie only)."""
    session_id = secrets.token_urlsafe(32)
    with db.transaction() as conn:
        conn.execute(
            "DELETE FROM page_sessions WHERE session_hash IN (SELECT session_hash FROM page_sessions "
            "WHERE expires_at <= now() OR revoked_at IS NOT NULL ORDER BY expires_at LIMIT %s "
            "FOR UPDATE SKIP LOCKED)",
            (PURGE_BATCH,),
        )
        conn.execute(
            "INSERT INTO page_sessions (session_hash, token_hash, expires_at) VALUES (%s, %s, now() + %s)",
            (_hash(session_id), token_hash, lifetime),
        )
    return session_id


def principal(db: Database, session_id: str) -> Principal | None:
    """Who the session signs in, or None when it is unknown, revoked or
    expired, or its token was revoked."""
    if len(session_id) > 200:
        return None
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT t.role, t.organizer_id FROM page_sessions s JOIN api_tokens t ON t.token_hash = s.token_hash "
            "WHERE s.session_hash = %s AND s.revoked_at IS NULL AND s.expires_at > now() AND t.revoked_at IS NULL",
            (_hash(session_id),),
        ).fetchone()
    return Principal(role=row[0], organizer_id=row[1]) if row else None


def revoke(db: Database, session_id: str) -> bool:
    """End the session for every copy of its cookie."""
    with db.transaction() as conn:
        cursor = conn.execute(
            "UPDATE page_sessions SET revoked_at = now() WHERE session_hash = %s AND revoked_at IS NULL",
            (_hash(session_id),),
        )
        return cursor.rowcount == 1
