"""``Idempotency-Key`` for every POST and PATCH (API.md).

The first response to (credential, key) is stored in the idempotency store
(``ledger.idempotency_store``: claim before the command, replay for 24 hours,
take-over of stale claims) and replayed byte for byte with
``Idempotent-Replayed: true``.  A concurrent duplicate waits (then replays) or
gets 409 — it never runs twice.  This module adds only the HTTP side: the
header, who the caller is, the request's fingerprint (method, path, body) and
the response bytes.

**A crash between the command and the stored response.**  The claim is
published to the service for the request (``idempotency_store.active_key``),
and every command the service runs under it records its result (aggregate and
version) on the key *in the same transaction as its events*.  A retry after a
crash therefore finds what committed and the service answers from those
versions without applying the commands again; the view renders that answer
and stores it as usual.  Per endpoint (issue 11, item 3):

* commands on existing aggregates (plan, providers, PATCH/reschedule/cancel
  of an event, payments, confirm, reject, resend-confirmation, refunds, the
  checkout retry) — the recorded result, in the events' transaction;
* creating commands (organizers, events, registrations; providers' connection
  id) — also an id derived from the key and the request (:func:`derived_id`):
  a re-run finds what the first run created; a registration's checkout is
  opened idempotently at the provider and recorded like any command;
* ``POST /v1/tokens`` — its answer (a secret shown once) is never stored: the
  key records the token's hash in the token's own transaction, and a retry
  revokes that token (nobody saw it) and issues a new one, so one key leaves
  one live token (``api_tokens.create_token(once=…)``).

**Who the caller is** (the credential that scopes keys): a hash of the
``Authorization`` header; for anonymous (public) callers the client's address
and ``User-Agent``, so two anonymous clients using the same key never meet —
one never receives the other's answer.  Behind a reverse proxy set
``LEDGER_TRUSTED_PROXIES`` to the number of proxies in front of the ledger
(the same setting the rate limits use): the client is then the n-th address
from the right of ``X-Forwarded-For``, which the proxies set and a client
cannot forge.  Left at 0 behind a proxy, every anonymous caller has the
proxy's address; they are then told apart only by the fingerprint (the same
key with another body is refused, 422), so only a byte-identical request
(same name, e-mail and fields, same key) could see the first one's answer.
Never trust ``X-Forwarded-For`` beyond the configured proxies: a client could
name another's address and join its scope.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from flask import Flask, Response, g, request

from api.context import current_ledger
from ledger.errors import IdempotencyKeyReused, RequestInProgress, ValidationFailed
from ledger.idempotency_store import ActiveKey, ClaimResult, IdempotencyStore, KeySlot, Outcome, active_key

HEADER = "Idempotency-Key"
KEYED_METHODS = frozenset({"POST", "PATCH"})
_REPLAYED_HEADERS = ("Content-Type", "Location", "ETag")
#: Responses that must never be stored: a new token is shown once only (see
#: :func:`unstored_key`).
NOT_STORED_PATHS = frozenset({"/v1/tokens"})
_NAMESPACE = uuid.UUID("0b6c5b1e-4a0e-4b8e-8f35-5f0c3c9a7e21")


def client_address() -> str:
    """The anonymous caller's address: the peer, or behind
    ``LEDGER_TRUSTED_PROXIES=n`` proxies the n-th address from the right of
    ``X-Forwarded-For`` (see the module docstring)."""
    address = request.remote_addr or ""
    trusted = current_ledger().settings.trusted_proxies
    if trusted > 0:
        forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
        if len(forwarded) >= trusted:
            address = forwarded[-trusted]
    return address


def _credential() -> str:
    auth = request.headers.get("Authorization", "")
    if auth:
        return hashlib.sha256(auth.encode()).hexdigest()
    client = f"{client_address()}\n{request.headers.get('User-Agent', '')}"
    return "public:" + hashlib.sha256(client.encode()).hexdigest()


def derived_id(purpose: str) -> uuid.UUID | None:
    """A stable id for the aggregate a keyed request creates, so that a re-run
    finds it instead of creating another.  The request's fingerprint is part
    of it: the same key sent with another body after the replay window
    creates its own aggregate instead of being answered with the old one."""
    key = getattr(g, "idempotency_key", None)
    if key is None:
        return None
    return uuid.uuid5(_NAMESPACE, f"{purpose}:{g.idempotency_credential}:{key}:{_request_hash()}")


def unstored_key() -> tuple[KeySlot, str] | None:
    """(slot, fingerprint) of a keyed request to a :data:`NOT_STORED_PATHS`
    endpoint, which handles its key itself; ``None`` without a key."""
    key = request.headers.get(HEADER)
    if key is None or request.method not in KEYED_METHODS:
        return None
    _check_key(key)
    return KeySlot(_credential(), key), _request_hash()


def _check_key(key: str) -> None:
    if not key or len(key) > 255 or not key.isprintable():
        raise ValidationFailed({HEADER: ["must be 1 to 255 printable characters"]})


def _request_hash() -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.path.encode() + b"\n")
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _before() -> Response | None:
    active_key.set(None)  # threads are reused: never inherit a previous request's key
    if request.method not in KEYED_METHODS or HEADER not in request.headers:
        return None
    if request.routing_exception is not None:  # no such operation (404, 405): nothing to claim
        return None
    if request.path in NOT_STORED_PATHS:
        return None
    key = request.headers[HEADER]
    _check_key(key)
    slot = KeySlot(_credential(), key)
    claim = IdempotencyStore(current_ledger().db).claim(slot, _request_hash())
    if claim.result is ClaimResult.CLAIMED:
        g.idempotency_key, g.idempotency_credential = key, slot.credential
        active_key.set(ActiveKey(slot, claim.committed))
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
    active_key.set(None)
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


def _teardown(_exc: BaseException | None = None) -> Any:
    active_key.set(None)


def register(app: Flask) -> None:
    app.before_request(_before)
    app.after_request(_after)
    app.teardown_request(_teardown)
