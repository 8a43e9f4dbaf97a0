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
from datetime import UTC, datetime
from typing import Any

from ledger.errors import InvalidSignature
from ledger.money import Money
from ledger.providers.base import Notification, NotificationKind
from ledger.providers.notification_fields import currency, decimal_amount, obj, objects

JSON = dict[str, Any]
CaptureLookup = Callable[[str], JSON]

TOLERANCE_SECONDS = 300

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
    return [found] if found else []


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
    """PayPal's verification API does not judge age; a replayed delivery with
    a valid signature would pass it, so deliveries older (or newer) than 300 s
    are refused here, before asking PayPal."""
    try:
        sent = datetime.fromisoformat(transmission_time)
    except ValueError:
        raise InvalidSignature("PAYPAL-TRANSMISSION-TIME is not a timestamp") from None
    if sent.tzinfo is None:
        sent = sent.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    if current.tzinfo is None:
        current = current.replace(tzinfo=UTC)
    if abs((current - sent).total_seconds()) > TOLERANCE_SECONDS:
        raise InvalidSignature(f"PayPal transmission time is outside the {TOLERANCE_SECONDS} s tolerance")


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
