"""``Idempotency-Key`` for every POST (API.md).

The first response to (credential, key) is stored in PostgreSQL and replayed
byte for byte for 24 hours with ``Idempotent-Replayed: true``.  A claim row
(``in_progress``) is inserted *before* the command runs, so a concurrent
duplicate sees it and waits (then replays) or gets 409 — it never runs twice.

If the process dies after the command but before the response is stored, the
claim is left ``in_progress``; it is taken over after ``STALE_CLAIM`` and the
command re-runs.  It still records nothing twice, because creating commands
derive the new aggregate's id from the key (:func:`derived_id`) and the other
commands are idempotent by state or by provider reference.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import timedelta

from flask import Flask, Response, g, request
from psycopg.types.json import Jsonb

from api.context import current_ledger
from ledger.errors import IdempotencyKeyReused, RequestInProgress, ValidationFailed

HEADER = "Idempotency-Key"
REPLAY_WINDOW = timedelta(hours=24)
STALE_CLAIM = timedelta(seconds=60)
WAIT_FOR_FIRST = 5.0
_REPLAYED_HEADERS = ("Content-Type", "Location", "ETag")
#: Responses that must never be stored: a new token is shown once only.
NOT_STORED_PATHS = frozenset({"/v1/tokens"})
_NAMESPACE = uuid.UUID("0b6c5b1e-4a0e-4b8e-8f35-5f0c3c9a7e21")


def _credential() -> str:
    auth = request.headers.get("Authorization", "")
    return hashlib.sha256(auth.encode()).hexdigest() if auth else "public"


def derived_id(purpose: str) -> uuid.UUID | None:
    """A stable id for the aggregate a keyed request creates, so that a re-run
    finds it instead of creating another."""
    key = getattr(g, "idempotency_key", None)
    if key is None:
        return None
    return uuid.uuid5(_NAMESPACE, f"{purpose}:{_credential()}:{key}")


def _request_hash() -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.path.encode() + b"\n")
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _before() -> Response | None:
    if request.method != "POST" or HEADER not in request.headers:
        return None
    if request.path in NOT_STORED_PATHS:
        return None
    key = request.headers[HEADER]
    if not key or len(key) > 255 or not key.isprintable():
        raise ValidationFailed({HEADER: ["must be 1 to 255 printable characters"]})
    credential, request_hash = _credential(), _request_hash()
    db = current_ledger().db
    deadline = time.monotonic() + WAIT_FOR_FIRST
    while True:
        with db.transaction() as conn:
            claimed = conn.execute(
                "INSERT INTO idempotency_keys (credential, key, request_hash, state) "
                "VALUES (%s, %s, %s, 'in_progress') ON CONFLICT DO NOTHING RETURNING 1",
                (credential, key, request_hash),
            ).fetchone()
            if claimed:
                g.idempotency_key, g.idempotency_credential = key, credential
                return None
            row = conn.execute(
                "SELECT request_hash, state, status, headers, body, "
                "now() - created_at AS age FROM idempotency_keys "
                "WHERE credential = %s AND key = %s FOR UPDATE",
                (credential, key),
            ).fetchone()
            if row is None:
                continue
            stored_hash, state, status, headers, body, age = row
            if age > REPLAY_WINDOW or (state == "in_progress" and age > STALE_CLAIM):
                conn.execute(
                    "UPDATE idempotency_keys SET request_hash = %s, state = 'in_progress', "
                    "status = NULL, headers = NULL, body = NULL, created_at = now() "
                    "WHERE credential = %s AND key = %s",
                    (request_hash, credential, key),
                )
                g.idempotency_key, g.idempotency_credential = key, credential
                return None
            if stored_hash != request_hash:
                raise IdempotencyKeyReused(
                    "this Idempotency-Key was used with a different request", field=HEADER
                )
            if state == "done":
                response = Response(bytes(body), status=status)
                response.headers.clear()
                for name, value in (headers or {}).items():
                    response.headers[name] = value
                response.headers["Idempotent-Replayed"] = "true"
                return response
        if time.monotonic() > deadline:
            raise RequestInProgress("the first request with this key has not finished yet")
        time.sleep(0.05)


def _after(response: Response) -> Response:
    key = getattr(g, "idempotency_key", None)
    if key is None:
        return response
    db = current_ledger().db
    with db.transaction() as conn:
        if response.status_code >= 500:
            conn.execute(
                "DELETE FROM idempotency_keys WHERE credential = %s AND key = %s AND state = 'in_progress'",
                (g.idempotency_credential, key),
            )
        else:
            headers = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
            conn.execute(
                "UPDATE idempotency_keys SET state = 'done', status = %s, headers = %s, body = %s "
                "WHERE credential = %s AND key = %s",
                (response.status_code, Jsonb(headers), response.get_data(),
                 g.idempotency_credential, key),
            )
    g.idempotency_key = None
    return response


def register(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)

