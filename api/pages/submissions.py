"""Once-only form submissions: the pages' ``Idempotency-Key``.

A form cannot send an ``Idempotency-Key`` header, so each rendered form carries
a hidden random ``form_key`` instead.  The first submission of a key claims it
in the same store the API uses (``ledger.idempotency_store``, credential ``pages:…``),
runs the command and stores where it sent the browser; a double click, a
reload of the POST or a retry after a lost response finds the key done and is
sent to the same place, so nothing is recorded twice — also for commands that
are not idempotent by state (``request_resend``).  Creating commands also get a
new id derived from the key (:func:`derived_id`), so even a re-run after a crash
finds the aggregate it created.

A refused command (``LedgerError``) releases its claim: the person corrects
the form and submits the same key again.

A crash after the command committed but before its key was completed: the
command recorded its result on the key in its events' transaction (the claim
is published to the service as ``idempotency_store.active_key``), so the next
submission of the form takes the key over and the service answers from that
result instead of running the command again (see ``ledger.idempotency_store``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable

from flask import redirect, request
from werkzeug.wrappers import Response

from api.context import current_ledger
from api.pages.i18n import _
from api.pages.session_auth import CSRF_FIELD, session_credential
from ledger.errors import IdempotencyKeyReused, RequestInProgress, ValidationFailed
from ledger.idempotency_store import ActiveKey, Claim, ClaimResult, IdempotencyStore, KeySlot, Outcome, using_key

FIELD = "form_key"
_NAMESPACE = uuid.UUID("3f0b8c2e-5d7a-4c41-9d6e-6a3c1e9b7f10")


def new_key() -> str:
    return uuid.uuid4().hex


def _key() -> str:
    key = request.form.get(FIELD, "")
    if not 8 <= len(key) <= 255 or not key.isprintable():
        raise ValidationFailed({FIELD: [_("This form is missing its key: reload the page and try again.")]})
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


def _claim(slot: KeySlot) -> tuple[Claim, str | None]:
    """Claim the key: (the claim, None) when this submission should run, or
    (the claim, the URL the first submission sent the browser to)."""
    claim = IdempotencyStore(current_ledger().db).claim(slot, _request_hash())
    if claim.result is ClaimResult.CLAIMED:
        return claim, None
    if claim.result is ClaimResult.REUSED:
        raise IdempotencyKeyReused(_("This form was already sent with other values: reload the page."), field=FIELD)
    if claim.result is ClaimResult.BUSY or claim.outcome is None:
        raise RequestInProgress(_("This form is still being processed; reload the page in a moment."))
    return claim, claim.outcome.headers.get("Location", request.path)


def run_once(action: Callable[[], str], *, replayed: Callable[[], None] | None = None) -> Response:
    """Run ``action`` (which returns the URL to show next) at most once per
    form key and answer 303 See Other to that URL (post/redirect/get).  A
    ``LedgerError`` from ``action`` releases the claim and propagates, so the
    view can show it next to its field."""
    slot = KeySlot(session_credential(), _key())
    claim, previous = _claim(slot)
    if previous is not None:
        if replayed is not None:
            replayed()
        return redirect(previous, 303)
    try:
        with using_key(ActiveKey(slot, claim.committed)):  # commands record their result on the key
            location = action()
    except BaseException:  # a refusal or a crash: the person may submit again
        with current_ledger().db.transaction() as conn:
            IdempotencyStore.release(conn, slot)
        raise
    with current_ledger().db.transaction() as conn:
        IdempotencyStore.complete(conn, slot, Outcome(303, {"Location": location}))
    return redirect(location, 303)
