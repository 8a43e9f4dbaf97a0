"""Stripe webhook events and Checkout Sessions, mapped to ledger notifications.

Pure functions, apart from one injected look-up (``SessionLookup``: the
Checkout Session that owns a PaymentIntent) because failures and refunds
arrive as PaymentIntent / Refund objects that do not name the session.

Refunds are read from Refund objects (``refund.created``, ``refund.updated``,
``charge.refund.updated``; ``charge.refunded`` only when it carries its
``refunds`` list, as API versions before 2022-11-15 do).  Each refund is
reported once as ``refund:{re_id}`` with its own amount, so partial refunds add
up and a refund seen by several events counts once.  Objects that are not ours
(no ``registration_id``: the organizer's account may sell other things) are
ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ledger.errors import InvalidSignature
from ledger.providers.base import Notification, NotificationKind
from ledger.providers.notification_fields import currency, minor_units, obj, objects

JSON = dict[str, Any]
SessionLookup = Callable[[str], JSON | None]

TOLERANCE_SECONDS = 300

SESSION_EVENTS: dict[str, NotificationKind | None] = {
    "checkout.session.completed": None,  # decided by payment_status
    "checkout.session.async_payment_succeeded": "paid",
    "checkout.session.async_payment_failed": "failed",
    "checkout.session.expired": "expired",
}
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "charge.refund.updated", "refund.failed"})

#: Disputes (docs.stripe.com/api/events/types, "charge.dispute.*"; the object
#: is a Dispute: docs.stripe.com/api/disputes/object).  ``closed`` is decided
#: by the dispute's ``status``.
DISPUTE_EVENTS: dict[str, tuple[NotificationKind, str] | None] = {
    "charge.dispute.created": ("disputed", "opened"),
    "charge.dispute.funds_withdrawn": ("funds_withdrawn", "withdrawn"),
    "charge.dispute.funds_reinstated": ("funds_reinstated", "reinstated"),
    "charge.dispute.closed": None,
}
#: A closed dispute's status -> outcome.  ``warning_closed``: an inquiry that
#: never became a chargeback, the organizer keeps the money (as when won).
_CLOSED: dict[str, NotificationKind] = {"won": "dispute_won", "warning_closed": "dispute_won", "lost": "dispute_lost"}


def map_event(event: JSON, session_for_intent: SessionLookup) -> list[Notification]:
    """Notifications for one verified event; ``[]`` when it is not ours.
    A body of another shape than Stripe documents raises ``NotificationMalformed``."""
    event_type = str(event.get("type", ""))
    found = obj(obj(event.get("data"), "data").get("object"), "data.object")
    if event_type in SESSION_EVENTS:
        kind = SESSION_EVENTS[event_type] or completed_kind(found)
        session = from_session(found, kind, event_type)
        return [session] if session else []
    if event_type == "payment_intent.payment_failed":
        return _from_failed_intent(found, event_type, str(event.get("id")), session_for_intent)
    if event_type in DISPUTE_EVENTS:
        return _from_dispute(found, event_type, session_for_intent)
    if event_type in REFUND_EVENTS:
        return _from_refunds([found], event_type, session_for_intent)
    if event_type == "charge.refunded":
        listed = obj(found.get("refunds"), "data.object.refunds").get("data")
        if listed is None:
            return []  # newer API versions omit the list; refund.* events cover it
        refunds = objects(listed, "data.object.refunds.data")
        for refund in refunds:
            refund.setdefault("payment_intent", found.get("payment_intent"))
        return _from_refunds(refunds, event_type, session_for_intent)
    return []


def session_status(session: JSON) -> Notification | None:
    """Where a retrieved Checkout Session stands; ``None`` while still open."""
    status = session.get("status")
    if status == "complete":
        return from_session(session, completed_kind(session), "checkout.session.complete")
    if status == "expired":
        return from_session(session, "expired", "checkout.session.expired")
    return None


def completed_kind(session: JSON) -> NotificationKind:
    """A completed session is paid unless the method settles later (SEPA,
    bank transfer): then it is pending until async_payment_succeeded/failed."""
    return "pending" if session.get("payment_status") == "unpaid" else "paid"


def from_session(session: JSON, kind: NotificationKind, raw_type: str) -> Notification | None:
    metadata = obj(session.get("metadata"), "metadata")
    registration_id = metadata.get("registration_id") or session.get("client_reference_id")
    if not registration_id or not session.get("id"):
        return None
    amount = None
    if kind == "paid" and session.get("amount_total") is not None:
        code = currency(session.get("currency"), "currency")
        amount = minor_units(session["amount_total"], code, "amount_total")
    return Notification(
        provider="stripe",
        # One session is paid, expired or failed at most once, whichever
        # route (webhook, return page, reconciler) tells us first.
        provider_event_id=f"{session['id']}:{kind}",
        kind=kind,
        registration_id=str(registration_id),
        reference=str(session["id"]),
        amount=amount,
        raw_type=raw_type,
    )


def check_signature_age(signature: str, now: datetime | None) -> None:
    """Refuse a signature more than 300 s from ``now``, either way: a replay
    of an old delivery, or a forged future timestamp that would stay "fresh".
    (The SDK checks only the past, and only against the wall clock.)"""
    try:
        stamp = int(next(p[2:] for p in signature.split(",") if p.startswith("t=")))
    except (StopIteration, ValueError):
        raise InvalidSignature("Stripe-Signature has no timestamp") from None
    current = now or datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    if abs(current.timestamp() - stamp) > TOLERANCE_SECONDS:
        raise InvalidSignature(f"Stripe-Signature timestamp is outside the {TOLERANCE_SECONDS} s tolerance")


def _from_failed_intent(
    intent: JSON, raw_type: str, event_id: str, session_for_intent: SessionLookup
) -> list[Notification]:
    """A declined attempt.  Not terminal at Stripe (the participant may try
    another card in the same session), so each attempt is its own fact and a
    later ``paid`` must win over it."""
    registration_id = obj(intent.get("metadata"), "metadata").get("registration_id")
    if not registration_id or not intent.get("id"):
        return []
    session = session_for_intent(str(intent["id"]))
    return [
        Notification(
            provider="stripe",
            provider_event_id=event_id,
            kind="failed",
            registration_id=str(registration_id),
            reference=str(session["id"]) if session else str(intent["id"]),
            amount=None,
            raw_type=raw_type,
        )
    ]


def _from_refunds(refunds: list[JSON], raw_type: str, session_for_intent: SessionLookup) -> list[Notification]:
    found: list[Notification] = []
    for refund in refunds:
        status = refund.get("status")
        if status not in ("succeeded", "failed") or not refund.get("payment_intent"):
            continue  # pending / canceled refunds moved no money
        session = session_for_intent(str(refund["payment_intent"]))
        registration_id = obj((session or {}).get("metadata"), "metadata").get("registration_id")
        if not session or not registration_id or not refund.get("id"):
            continue  # a refund of something the ledger never sold
        code = currency(refund.get("currency"), "refund currency")
        failed = status == "failed"  # the money never reached the payer (issue 18)
        found.append(
            Notification(
                provider="stripe",
                provider_event_id=f"refund_failed:{refund['id']}" if failed else f"refund:{refund['id']}",
                kind="refund_failed" if failed else "refunded",
                registration_id=str(registration_id),
                reference=str(session["id"]),
                amount=minor_units(refund.get("amount"), code, "refund amount"),
                raw_type=raw_type,
            )
        )
    return found


def _from_dispute(dispute: JSON, raw_type: str, session_for_intent: SessionLookup) -> list[Notification]:
    """One step of a dispute, as the fact ``dispute:{dp_id}:{step}``: each
    step happens once per dispute, whichever event or delivery reports it."""
    step = DISPUTE_EVENTS[raw_type]
    if step is None:
        kind = _CLOSED.get(str(dispute.get("status")))
        if kind is None:
            return []  # not closed after all (Stripe sends closed only when it is)
        step = (kind, "closed")
    intent = dispute.get("payment_intent")
    if not dispute.get("id") or not intent:
        return []
    session = session_for_intent(str(intent))
    registration_id = obj((session or {}).get("metadata"), "metadata").get("registration_id")
    if not session or not registration_id:
        return []  # a dispute about something the ledger never sold
    code = currency(dispute.get("currency"), "dispute currency")
    reason = dispute.get("reason")
    return [
        Notification(
            provider="stripe",
            provider_event_id=f"dispute:{dispute['id']}:{step[1]}",
            kind=step[0],
            registration_id=str(registration_id),
            reference=str(session["id"]),
            amount=minor_units(dispute.get("amount"), code, "dispute amount"),
            raw_type=raw_type,
            reason=str(reason) if isinstance(reason, str) else None,
        )
    ]
