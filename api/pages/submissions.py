"""Once-only form submissions: the pages' ``Idempotency-Key``.

A form cannot send an ``Idempotency-Key`` header, so each rendered form carries
a hidden random ``form_key`` instead.  The first submission of a key claims it
in the same ``idempotency_keys`` table the API uses (credential ``pages:…``),
runs the command and stores where it sent the browser; a double click, a
reload of the POST or a retry after a lost response finds the key done and is
sent to the same place, so nothing is recorded twice — also for commands that
are not idempotent by state (``request_resend``).  Creating commands also get a
new id derived from the key (:func:`derived_id`), so even a re-run after a crash
finds the aggregate it created.

A refused command (``LedgerError``) releases its claim: the person corrects
the form and submits the same key again.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from flask import redirect, request
from psycopg.types.json import Jsonb
from werkzeug.wrappers import Response

from api.context import current_ledger
from api.pages.session_auth import CSRF_FIELD, session_credential
from ledger.errors import IdempotencyKeyReused, RequestInProgress, ValidationFailed

FIELD = "form_key"
REPLAY_WINDOW = timedelta(hours=24)
STALE_CLAIM = timedelta(seconds=60)
WAIT_FOR_FIRST = 5.0
_NAMESPACE = uuid.UUID("3f0b8c2e-5d7a-4c41-9d6e-6a3c1e9b7f10")


def new_key() -> str:
    return uuid.uuid4().hex


def _key() -> str:
    key = request.form.get(FIELD, "")
    if not 8 <= len(key) <= 255 or not key.isprintable():
        raise ValidationFailed({FIELD: ["this form is missing its key: reload the page and try again"]})
    return key


def derived_id(purpose: str) -> uuid.UUID:
    """A stable id for what this submission creates (see module docstring)."""
    return uuid.uuid5(_NAMESPACE, f"{purpose}:{session_credential()}:{_key()}")


def _request_hash() -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    for name in sorted(request.form):
        if name != CSRF_FIELD:
            for value in request.form.getlist(name):
                digest.update(f"{name}={value}\n".encode())
    return digest.hexdigest()


def _claim(credential: str, key: str, request_hash: str) -> str | None:
    """Claim the key; None when this submission should run, or the URL the
    first submission sent the browser to."""
    db = current_ledger().db
    deadline = time.monotonic() + WAIT_FOR_FIRST
    while True:
        with db.transaction() as conn:
            if conn.execute(
                "INSERT INTO idempotency_keys (credential, key, request_hash, state) "
                "VALUES (%s, %s, %s, 'in_progress') ON CONFLICT DO NOTHING RETURNING 1",
                (credential, key, request_hash),
            ).fetchone():
                return None
            row = conn.execute(
                "SELECT request_hash, state, headers, now() - created_at FROM idempotency_keys "
                "WHERE credential = %s AND key = %s FOR UPDATE",
                (credential, key),
            ).fetchone()
            if row is None:
                continue
            stored_hash, state, headers, age = row
            if age > REPLAY_WINDOW or (state == "in_progress" and age > STALE_CLAIM):
                conn.execute(
                    "UPDATE idempotency_keys SET request_hash = %s, state = 'in_progress', status = NULL, "
                    "headers = NULL, body = NULL, created_at = now() WHERE credential = %s AND key = %s",
                    (request_hash, credential, key),
                )
                return None
            if stored_hash != request_hash:
                raise IdempotencyKeyReused("this form was already sent with other values: reload the page",
                                           field=FIELD)
            if state == "done":
                return str((headers or {}).get("Location", request.path))
        if time.monotonic() > deadline:
            raise RequestInProgress("this form is still being processed; reload the page in a moment")
        time.sleep(0.05)


def _finish(credential: str, key: str, location: str) -> None:
    with current_ledger().db.transaction() as conn:
        conn.execute(
            "UPDATE idempotency_keys SET state = 'done', status = 303, headers = %s, body = ''::bytea "
            "WHERE credential = %s AND key = %s",
            (Jsonb({"Location": location}), credential, key),
        )


def _release(credential: str, key: str) -> None:
    with current_ledger().db.transaction() as conn:
        conn.execute(
            "DELETE FROM idempotency_keys WHERE credential = %s AND key = %s AND state = 'in_progress'",
            (credential, key),
        )


def run_once(action: Callable[[], str], *, replayed: Callable[[], None] | None = None) -> Response:
    """Run ``action`` (which returns the URL to show next) at most once per
    form key and answer 303 See Other to that URL (post/redirect/get).  A
    ``LedgerError`` from ``action`` releases the claim and propagates, so the
    view can show it next to its field."""
    credential, key = session_credential(), _key()
    previous = _claim(credential, key, _request_hash())
    if previous is not None:
        if replayed is not None:
            replayed()
        return redirect(previous, 303)
    try:
        location = action()
    except BaseException:  # a refusal or a crash: the person may submit again
        _release(credential, key)
        raise
    _finish(credential, key, location)
    return redirect(location, 303)
