"""R17, R19: which of a registration's money pays for its ticket, and which is
owed back to the payer.

Every amount received is in exactly one of three places, always::

    paid = refunded + withdrawn + refund_due (owed back, R17) + ticket money

*Withdrawn* is money the provider took back by itself (a dispute's funds
withdrawn, net of any reinstated, or a PayPal reversal; issue 18): like a
refund, but not the organizer's doing.  It is taken the way refunds are (owed
back first, then the ticket); a lost dispute or a reversal ends access.  A
refund that failed at the provider is no refund: its amount is owed back again.

*Ticket money* pays for a ticket the registration holds.  A registration holds a
paid ticket while it is open (not rejected, cancelled, refunded with its access
ended, and its payment found a seat) and what was paid reaches the price.

* **When the ticket becomes paid** (the payment that completes the price, with a
  seat), its ticket money is fixed: ``min(paid - refunded, price)``.  Part
  payments waiting for the rest join it then.
* **Afterwards it only goes down**: a partial (goodwill) refund that keeps access
  takes from it (R19); losing the ticket (reject, event cancelled, a refund that
  ends access) sets it to 0.  A later payment never tops it up again: a ticket
  has one price, anything beyond is owed back.
* **Everything else is owed back** until a refund is recorded: a second or excess
  payment, a payment that found no seat, a payment on a cancelled event or of a
  rejected participant, part payments while the rest has not arrived, all money
  of a registration that lost its ticket.
* **Refunds are taken from the money owed back first, then from the ticket.**
  Refunding a double payment therefore never touches the ticket; only a refund
  larger than what is owed back reduces the ticket money (and its fee, R18).
* **A refund ends access** when the organizer says so (``ends_access``); by
  default only when it leaves nothing paid (everything received has been
  refunded, or taken back by the provider).  A refund that ends access closes the registration ("refunded"):
  the ticket is given back and whatever was not refunded is owed back.

These functions decide; ``Registration`` (the aggregate) and the who-paid view
both apply them, so the view can never split money differently from the
aggregate.  Worked examples: docs/money.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class MoneyHolder(Protocol):
    """What the rules read: a registration, or its row in the who-paid view."""

    price_minor: int
    paid_minor: int
    refunded_minor: int
    ticket_minor: int
    closed_reason: str | None

    @property
    def withdrawn_minor(self) -> int: ...


@dataclass(frozen=True)
class Split:
    """The registration after a fact: its ticket money and why it is closed."""

    ticket_minor: int
    closed_reason: str | None


def holds_paid_ticket(h: MoneyHolder) -> bool:
    """Open, and what was paid reaches the price."""
    return h.closed_reason is None and h.paid_minor >= h.price_minor


def owed_minor(h: MoneyHolder) -> int:
    """Money received, not refunded, that pays for no ticket (R17).  Never
    negative: refunds are at most what was paid, the ticket at most the rest."""
    return h.paid_minor - h.refunded_minor - h.withdrawn_minor - h.ticket_minor


def after_payment(h: MoneyHolder, amount_minor: int, *, seat_granted: bool) -> Split:
    """A payment of ``amount_minor``.  ``seat_granted`` False: it came when no
    seat was left (R9); the registration closes and the money is owed back.  A
    registration that already holds its paid ticket keeps it: the money is a
    second payment, owed back."""
    closed = h.closed_reason
    if not seat_granted and closed is None and not holds_paid_ticket(h):
        closed = "capacity_exhausted"
    ticket = h.ticket_minor
    if closed is None and h.paid_minor < h.price_minor <= h.paid_minor + amount_minor:
        ticket = min(h.paid_minor + amount_minor - h.refunded_minor - h.withdrawn_minor, h.price_minor)
    return Split(ticket if closed is None else 0, closed)


def ends_access_by_default(h: MoneyHolder, amount_minor: int) -> bool:
    """R19: a refund ends access by default only when nothing paid is left --
    nothing held: money a provider took back (a dispute) is not held either.
    The decision is stored on the refund (``ends_access``), so views replay it."""
    return h.refunded_minor + h.withdrawn_minor + amount_minor >= h.paid_minor


def after_refund(h: MoneyHolder, amount_minor: int, *, ends_access: bool) -> Split:
    """A refund of ``amount_minor``: from the money owed back first, then from
    the ticket; with ``ends_access`` an open registration closes ("refunded")."""
    from_ticket = max(0, amount_minor - owed_minor(h))
    closed = h.closed_reason
    if ends_access and closed is None:
        closed = "refunded"
    return Split(h.ticket_minor - from_ticket if closed is None else 0, closed)


def after_withdrawal(h: MoneyHolder, amount_minor: int) -> Split:
    """The provider took ``amount_minor`` back (dispute, reversal): taken like
    a refund -- from the money owed back first, then from the ticket.  Access
    is ended by the dispute's loss, not by the withdrawal itself (a dispute
    may still be won)."""
    from_ticket = max(0, amount_minor - owed_minor(h))
    return Split(max(0, h.ticket_minor - from_ticket) if h.closed_reason is None else 0, h.closed_reason)


def after_reinstatement(h: MoneyHolder, amount_minor: int, restorable_minor: int) -> Split:
    """Withdrawn money came back (a dispute won).  While the registration
    holds its ticket, it gives the ticket back what the withdrawal took from
    it (``restorable_minor``), never more: the ticket is then as it was before
    the dispute, and the rest is owed back again, as it was.  Money owed back
    before the withdrawal (a second payment, say) stays owed back."""
    if h.closed_reason is not None:
        return Split(0, h.closed_reason)
    return Split(h.ticket_minor + min(amount_minor, max(0, restorable_minor)), None)


def after_reinstatement_v1(h: MoneyHolder, amount_minor: int) -> Split:
    """The rule ``DisputeFundsReinstated`` v1 events were decided by (kept so
    that they replay as the ledger recorded them): the money held, up to the
    price, became ticket money -- which could turn money owed back before the
    dispute into ticket money when a goodwill refund had lowered the ticket."""
    if h.closed_reason is not None or h.paid_minor < h.price_minor:
        return Split(0 if h.closed_reason else h.ticket_minor, h.closed_reason)
    held = h.paid_minor - h.refunded_minor - (h.withdrawn_minor - amount_minor)
    return Split(min(held, h.price_minor), None)


def reinstated_split(h: MoneyHolder, amount_minor: int, ticket_minor: int | None) -> Split:
    """The split a ``DisputeFundsReinstated`` leaves: v2 carries the ticket
    money the aggregate decided (``after_reinstatement``); v1 (``None``)
    replays by its own rule.  The aggregate and the who-paid view both apply
    this, so they cannot differ."""
    if ticket_minor is None:
        return after_reinstatement_v1(h, amount_minor)
    return Split(ticket_minor if h.closed_reason is None else 0, h.closed_reason)
