"""``Idempotency-Key`` for every POST (API.md).

The first response to (credential, key) is stored in the idempotency store
(``ledger.idempotency_store``: claim before the command, replay for 24 hours,
take-over of stale claims) and replayed byte for byte with
``Idempotent-Replayed: true``.  A concurrent duplicate waits (then replays) or
gets 409 — it never runs twice.  This module adds only the HTTP side: the
header, the request's fingerprint (method, path, body) and the response bytes.

If the process dies after the command but before the response is stored, the
claim is left ``in_progress``; it is taken over after the store's ``STALE_CLAIM`` and the
command re-runs.  It still records nothing twice, because creating commands
derive the new aggregate's id from the key (:func:`derived_id`) and the other
commands are idempotent by state or by provider reference.
"""

from __future__ import annotations

import hashlib
import uuid

from flask import Flask, Response, g, request

from api.context import current_ledger
from ledger.errors import IdempotencyKeyReused, RequestInProgress, ValidationFailed
from ledger.idempotency_store import ClaimResult, IdempotencyStore, KeySlot, Outcome

HEADER = "Idempotency-Key"
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
    slot = KeySlot(_credential(), key)
    claim = IdempotencyStore(current_ledger().db).claim(slot, _request_hash())
    if claim.result is ClaimResult.CLAIMED:
        g.idempotency_key, g.idempotency_credential = key, slot.credential
        return None
    if claim.result is ClaimResult.REUSED:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request", field=HEADER)
    if claim.result is ClaimResult.BUSY or claim.outcome is None:
        raise RequestInProgress("the first request with this key has not finished yet")
    response = Response(claim.outcome.body, status=claim.outcome.status)
    response.headers.clear()
    for name, value in claim.outcome.headers.items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _after(response: Response) -> Response:
    key = getattr(g, "idempotency_key", None)
    if key is None:
        return response
    slot = KeySlot(g.idempotency_credential, key)
    with current_ledger().db.transaction() as conn:
        if response.status_code >= 500:
            IdempotencyStore.release(conn, slot)
        else:
            headers = {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}
            IdempotencyStore.complete(conn, slot, Outcome(response.status_code, headers, response.get_data()))
    g.idempotency_key = None
    return response


def register(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)
