"""PayPal webhook events and Orders v2 objects, mapped to ledger notifications.

Pure functions, apart from one injected look-up (``CaptureLookup``): a
``PAYMENT.CAPTURE.REFUNDED`` resource is the Refund, which names neither the
registration nor the order, only the refunded capture (its ``up`` link).  The
capture id is taken from that link and fetched from *our* configured host,
never by following a URL found in the body.

Fact ids: the same capture reaches us from ``capture()``, ``fetch_status()``
and the webhook, so it is ``capture:{id}:{status}`` everywhere; a refund is
``refund:{id}``; an order state ``order:{id}:{status}``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.errors import InvalidSignature
from ledger.money import Money
from ledger.providers.base import Notification, NotificationKind
from ledger.providers.notification_fields import currency, decimal_amount, obj, objects

JSON = dict[str, Any]
CaptureLookup = Callable[[str], JSON]

#: Clock skew allowed for a transmission time in the future.
TOLERANCE_SECONDS = 300
#: PayPal retries for up to 3 days; a day more for resends and slow queues.
RETRY_HORIZON = timedelta(days=4)

CAPTURE_EVENTS: dict[str, NotificationKind] = {
    "PAYMENT.CAPTURE.COMPLETED": "paid",
    "PAYMENT.CAPTURE.PENDING": "pending",
    "PAYMENT.CAPTURE.DENIED": "failed",
    "PAYMENT.CAPTURE.DECLINED": "failed",
}
_CAPTURE_KINDS: dict[str, NotificationKind] = {
    "COMPLETED": "paid",
    "PENDING": "pending",
    "DECLINED": "failed",
    "FAILED": "failed",
}
_ORDER_KINDS: dict[str, NotificationKind] = {"APPROVED": "pending", "VOIDED": "expired"}
_CAPTURE_LINK = re.compile(r"/v2/payments/captures/([^/?#]+)")


def map_event(event: JSON, capture_by_id: CaptureLookup) -> list[Notification]:
    """Notifications for one verified event; ``[]`` when it is not ours."""
    event_type = str(event.get("event_type", ""))
    resource = obj(event.get("resource"), "resource")
    found: Notification | None = None
    if event_type in CAPTURE_EVENTS:
        found = from_capture(resource, CAPTURE_EVENTS[event_type], event_type)
    elif event_type == "CHECKOUT.ORDER.APPROVED":
        # Approved, not paid: the service captures (CapturingGateway.capture).
        found = from_order(resource, event_type)
    elif event_type == "PAYMENT.CAPTURE.REFUNDED":
        found = _from_refund(resource, event_type, capture_by_id)
    elif event_type == "PAYMENT.CAPTURE.REVERSED":
        found = _from_reversal(resource, event_type, capture_by_id)
    elif event_type in DISPUTE_EVENTS:
        found = _from_dispute(resource, event_type, capture_by_id)
    return [found] if found else []


#: developer.paypal.com/api/rest/webhooks/event-names/ ("Disputes"); the
#: resource is a Dispute (developer.paypal.com/docs/api/customer-disputes/v1/).
DISPUTE_EVENTS = frozenset({"CUSTOMER.DISPUTE.CREATED", "CUSTOMER.DISPUTE.RESOLVED"})
#: A resolved dispute's ``dispute_outcome.outcome_code`` -> ledger kind.  The
#: payer's win takes the money back (PayPal also sends
#: PAYMENT.CAPTURE.REVERSED for it, which books the money); the others leave
#: it with the organizer.
_DISPUTE_OUTCOMES: dict[str, NotificationKind] = {
    "RESOLVED_BUYER_FAVOUR": "dispute_lost",
    "ACCEPTED": "dispute_lost",
    "RESOLVED_SELLER_FAVOUR": "dispute_won",
    "RESOLVED_WITH_PAYOUT": "dispute_won",
    "CANCELED_BY_BUYER": "dispute_won",
    "DENIED": "dispute_won",
}


def from_order(order: JSON, raw_type: str = "order") -> Notification | None:
    """An order's state: its first capture if any, else APPROVED (pending
    capture) or VOIDED (expired); CREATED / PAYER_ACTION_REQUIRED tell nothing."""
    units = objects(order.get("purchase_units"), "purchase_units")
    unit = units[0] if units else {}
    captures = objects(obj(unit.get("payments"), "purchase_units[0].payments").get("captures"), "captures")
    if captures:
        capture = dict(captures[0])
        capture.setdefault("custom_id", unit.get("custom_id"))
        capture.setdefault("supplementary_data", {"related_ids": {"order_id": order.get("id")}})
        kind = _CAPTURE_KINDS.get(str(capture.get("status")))
        return from_capture(capture, kind, f"{raw_type} capture") if kind else None
    status = str(order.get("status"))
    if status not in _ORDER_KINDS or not unit.get("custom_id"):
        return None
    return Notification(
        provider="paypal",
        provider_event_id=f"order:{order['id']}:{status}",
        kind=_ORDER_KINDS[status],
        registration_id=str(unit["custom_id"]),
        reference=str(order["id"]),
        amount=None,
        raw_type=f"{raw_type} {status}",
    )


def expired_order(order_id: str, registration_id: str | None) -> Notification:
    """The ledger's own end of an uncaptured order whose seat hold lapsed
    (R20): the same fact id a VOIDED order would have, so it counts once."""
    return Notification(
        provider="paypal",
        provider_event_id=f"order:{order_id}:VOIDED",
        kind="expired",
        registration_id=registration_id,
        reference=order_id,
        amount=None,
        raw_type="order expired by the ledger",
    )


def from_capture(capture: JSON, kind: NotificationKind, raw_type: str) -> Notification | None:
    registration_id = capture.get("custom_id")
    order_id = order_id_of(capture)
    if not registration_id or not order_id or not capture.get("id"):
        return None  # not a capture the ledger made
    return Notification(
        provider="paypal",
        provider_event_id=f"capture:{capture['id']}:{capture.get('status')}",
        kind=kind,
        registration_id=str(registration_id),
        reference=order_id,
        amount=money(capture.get("amount")) if kind == "paid" else None,
        raw_type=raw_type,
    )


def order_id_of(capture: JSON) -> str | None:
    related = obj(obj(capture.get("supplementary_data"), "supplementary_data").get("related_ids"), "related_ids")
    order_id = related.get("order_id")
    return str(order_id) if order_id else None


def money(amount: Any) -> Money:
    """PayPal amounts are decimal strings; parsed exactly, never via float.
    Any other shape raises ``NotificationMalformed``; an amount above R21's
    bound is left for the domain to refuse (``notification_fields``)."""
    found = obj(amount, "amount")
    code = currency(found.get("currency_code"), "amount.currency_code")
    return decimal_amount(found.get("value"), code, "amount.value")


def check_transmission_age(transmission_time: str, now: datetime | None) -> None:
    """Refuse transmissions from the future (beyond 300 s of clock skew) or
    older than PayPal's retry horizon (``RETRY_HORIZON``), before asking
    PayPal.

    Why not 300 s both ways: PayPal retries a delivery that was not answered
    2xx for up to 3 days (developer.paypal.com/api/rest/webhooks/rest/, "Integrate
    webhooks"); a retry carries the same event (same ``id`` and
    ``create_time``) with its own transmission (id, time, signature -- the
    Webhooks Events API lists each event's ``transmissions``).  Refusing a
    genuine delivery because it reached us late (queued behind an outage, or a
    resend of an older transmission) would lose a payment fact, while a replay
    of a genuine delivery gains an attacker nothing: PayPal's verification
    covers transmission id, time, webhook id and the body's CRC32, and the
    facts it carries are de-duplicated by id (``provider_facts``), verified
    bodies by hash (``provider_inbox``).  Replay protection therefore rests on
    de-duplication; this check only bounds what is worth asking PayPal about.
    """
    try:
        sent = datetime.fromisoformat(transmission_time)
    except ValueError:
        raise InvalidSignature("PAYPAL-TRANSMISSION-TIME is not a timestamp") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    age = (current - sent).total_seconds()
    if age < -TOLERANCE_SECONDS:
        raise InvalidSignature(f"PayPal transmission time is more than {TOLERANCE_SECONDS} s in the future")
    if age > RETRY_HORIZON.total_seconds():
        raise InvalidSignature("PayPal transmission time is older than PayPal's 3-day retry horizon")


def _from_refund(refund: JSON, raw_type: str, capture_by_id: CaptureLookup) -> Notification | None:
    if refund.get("status") != "COMPLETED" or not refund.get("id"):
        return None  # PENDING / FAILED / CANCELLED refunds moved no money
    capture_id = next(
        (
            m.group(1)
            for link in objects(refund.get("links"), "links")
            if link.get("rel") == "up" and (m := _CAPTURE_LINK.search(str(link.get("href"))))
        ),
        None,
    )
    if capture_id is None:
        return None
    capture = capture_by_id(capture_id)
    registration_id = capture.get("custom_id")
    order_id = order_id_of(capture)
    if not registration_id or not order_id:
        return None
    return Notification(
        provider="paypal",
        provider_event_id=f"refund:{refund['id']}",
        kind="refunded",
        registration_id=str(registration_id),
        reference=order_id,
        amount=money(refund.get("amount")),
        raw_type=raw_type,
    )


def _capture_of(capture_id: str | None, capture_by_id: CaptureLookup) -> tuple[str, str] | None:
    """(registration id, order id) of one of our captures, fetched from our
    configured host; ``None`` when it is not a capture the ledger made."""
    if not capture_id:
        return None
    capture = capture_by_id(capture_id)
    registration_id = capture.get("custom_id")
    order_id = order_id_of(capture)
    if not registration_id or not order_id:
        return None
    return str(registration_id), order_id


def _from_reversal(resource: JSON, raw_type: str, capture_by_id: CaptureLookup) -> Notification | None:
    """PAYMENT.CAPTURE.REVERSED: PayPal took a capture's money back (a
    chargeback or a claim decided for the payer).  The resource names the
    capture itself, or (as a refund does) links ``up`` to it."""
    if not resource.get("id"):
        return None
    capture_id = str(resource["id"]) if order_id_of(resource) else next(
        (
            m.group(1)
            for link in objects(resource.get("links"), "links")
            if link.get("rel") == "up" and (m := _CAPTURE_LINK.search(str(link.get("href"))))
        ),
        None,
    )
    found = _capture_of(capture_id, capture_by_id)
    if found is None:
        return None
    given = dict(obj(resource.get("amount"), "amount"))
    if isinstance(given.get("value"), str):
        given["value"] = given["value"].removeprefix("-")  # some payloads carry it negative
    amount = money(given)
    return Notification(
        provider="paypal",
        provider_event_id=f"reversal:{resource['id']}",
        kind="reversed",
        registration_id=found[0],
        reference=found[1],
        amount=amount,
        raw_type=raw_type,
    )


def _from_dispute(dispute: JSON, raw_type: str, capture_by_id: CaptureLookup) -> Notification | None:
    """A dispute opened or resolved about one of our captures
    (``disputed_transactions[].seller_transaction_id``)."""
    dispute_id = dispute.get("dispute_id")
    transactions = objects(dispute.get("disputed_transactions"), "disputed_transactions")
    if not dispute_id or not transactions:
        return None
    if raw_type == "CUSTOMER.DISPUTE.CREATED":
        kind: NotificationKind | None = "disputed"
        step = "opened"
    else:
        outcome = obj(dispute.get("dispute_outcome"), "dispute_outcome").get("outcome_code")
        kind = _DISPUTE_OUTCOMES.get(str(outcome))
        step = "closed"
    if kind is None:
        return None
    found = _capture_of(transactions[0].get("seller_transaction_id"), capture_by_id)
    if found is None:
        return None
    reason = dispute.get("reason")
    return Notification(
        provider="paypal",
        provider_event_id=f"dispute:{dispute_id}:{step}",
        kind=kind,
        registration_id=found[0],
        reference=found[1],
        amount=money(dispute.get("dispute_amount")),
        raw_type=raw_type,
        reason=str(reason) if isinstance(reason, str) else None,
    )
