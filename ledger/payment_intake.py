"""Provider facts become ledger commands, whatever their order or repetition.

Every route that learns something from a provider -- a webhook, the
participant's return, the reconciler, PayPal's capture answer -- hands the
gateway's :class:`~ledger.providers.base.Notification` objects to
:class:`PaymentIntake`.  The mapping (:func:`decide`):

* ``paid`` for exactly the price -> ``record_payment``; the same amount when
  something was already paid under another reference is money received twice,
  recorded all the same and owed back (R17, outcome ``payment_recorded_surplus``);
* ``paid`` for another amount or currency -> ``record_payment_mismatch``: kept
  apart for the organizer, who records the real money by hand
  (``POST /v1/registrations/{id}/payments`` with the same provider and
  reference) when it is in the event's currency;
* ``failed`` / ``expired`` -> ``record_payment_failure``, which releases the
  held seat (R9) -- unless the price is already paid: a late failure never
  undoes a payment;
* ``refunded`` -> ``record_refund`` with the provider's refund id as reference
  (R15, partial refunds add up);
* ``pending`` -> nothing, except a PayPal approval, which is captured here.

Why it is safe to repeat and reorder: each fact is claimed once in
``provider_facts`` (keyed by the provider's fact id within its connection),
and the commands are idempotent by provider reference anyway.  A fact that cannot apply *yet* -- a
refund delivered before its payment -- is kept unprocessed ("deferred") and
retried after the registration's next payment and by the reconciler.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ledger.domain.registration import Registration
from ledger.errors import LedgerError, NotFound, RefundExceedsPaid, VersionConflict
from ledger.money import MINOR_UNIT_DIGITS
from ledger.provider_access import Connection, ProviderAccess
from ledger.providers import inbox
from ledger.providers.base import CapturingGateway, Notification
from ledger.service import LedgerService

log = logging.getLogger(__name__)

#: Stripe reports each declined card as ``payment_intent.payment_failed`` while
#: the Checkout Session stays open for another attempt: not the end of the
#: checkout, so the held seat is kept (a later ``paid`` must find it).
NON_TERMINAL_FAILURES = frozenset({"payment_intent.payment_failed"})


@dataclass(frozen=True)
class Decision:
    """What a fact led to; ``processed=False`` means "not yet, retry later"."""

    outcome: str
    processed: bool = True


@dataclass(frozen=True)
class Result:
    provider_event_id: str
    outcome: str


def decide(service: LedgerService, n: Notification, registration: Registration) -> Decision:
    """Apply one fact to one registration (already checked to be the
    connection's own).  Domain refusals that no retry can cure end as
    processed outcomes; the fact stays in the inbox for the organizer."""
    rid = str(registration.id)
    if n.kind == "paid":
        return _paid(service, n, registration)
    if n.kind in ("failed", "expired"):
        if registration.paid_minor >= registration.price_minor:
            return Decision("superseded_by_payment")
        if n.raw_type in NON_TERMINAL_FAILURES:
            return Decision("declined_attempt_checkout_open")
        current = registration.checkout["reference"] if registration.checkout else None
        if current is not None and n.reference != current:
            # An earlier checkout of this registration ended (e.g. a PayU order
            # replaced after its link was lost): the current one keeps the seat.
            return Decision(f"earlier_checkout_{n.kind}")
        service.record_payment_failure(rid, reason=n.kind, reference=n.reference)
        return Decision(f"payment_{n.kind}")
    if n.kind == "refunded":
        return _refunded(service, n, registration)
    if n.kind in CORRECTIONS:
        return _corrected(service, n, registration)
    return Decision("pending")


#: Provider corrections of money it reported earlier (issue 18).
CORRECTIONS = frozenset(
    {"disputed", "funds_withdrawn", "funds_reinstated", "dispute_won", "dispute_lost", "reversed", "refund_failed"}
)


def _corrected(service: LedgerService, n: Notification, registration: Registration) -> Decision:
    """Disputes, reversals and failed refunds: each a fact on the
    registration, idempotent by the provider's dispute / refund id.  One that
    arrives before the payment it corrects waits for it (like a refund)."""
    rid = str(registration.id)
    subject = n.subject_id
    if n.kind == "refund_failed":
        if not registration.has_refund(subject):
            return Decision("deferred_until_refund", processed=False)
        service.record_refund_failure(rid, reference=subject)
        return Decision("refund_failed_recorded")
    if registration.paid_minor == 0:
        return Decision("deferred_until_payment", processed=False)
    if n.kind in ("dispute_won", "dispute_lost"):
        service.resolve_dispute(rid, dispute_id=subject, outcome=n.kind.removeprefix("dispute_"))
        return Decision(f"{n.kind}_recorded")
    if n.amount is None:
        return Decision(f"{n.kind}_without_amount")
    if n.amount.currency != registration.currency:
        return Decision(f"{n.kind}_currency_mismatch")
    if n.kind == "disputed":
        service.record_dispute(rid, dispute_id=subject, provider=n.provider, reference=n.reference,
                               amount=n.amount, reason=n.reason)
    elif n.kind == "funds_withdrawn":
        service.record_funds_withdrawn(rid, dispute_id=subject, amount=n.amount)
    elif n.kind == "funds_reinstated":
        service.record_funds_reinstated(rid, dispute_id=subject, amount=n.amount)
    else:
        service.record_reversal(rid, reversal_id=subject, reference=n.reference, amount=n.amount)
    return Decision(f"{n.kind}_recorded")


def _paid(service: LedgerService, n: Notification, registration: Registration) -> Decision:
    rid = str(registration.id)
    if n.amount is None:
        return Decision("paid_without_amount")
    if n.amount != registration.price:
        if n.amount.currency not in MINOR_UNIT_DIGITS:
            return Decision("payment_mismatch_unknown_currency")
        service.record_payment_mismatch(rid, amount=n.amount, provider=n.provider, reference=n.reference)
        return Decision("payment_mismatch")
    if registration.has_payment(n.provider, n.reference):
        return Decision("payment_already_recorded")
    owed_before = registration.refund_due_minor
    after = service.record_payment(rid, amount=n.amount, provider=n.provider, reference=n.reference)
    # Money beyond a paid ticket (paid twice), or on a closed registration, is
    # still a fact: recorded, and owed back (R17).
    if after.refund_due_minor > owed_before and after.status != "awaiting_payment":
        return Decision("payment_recorded_surplus")
    return Decision("payment_recorded")


def _refunded(service: LedgerService, n: Notification, registration: Registration) -> Decision:
    reference = n.provider_event_id.removeprefix("refund:")
    if n.amount is None:
        return Decision("refund_without_amount")
    if registration.has_refund(reference):
        return Decision("refund_already_recorded")
    if n.amount.currency != registration.currency:
        return Decision("refund_currency_mismatch")
    if n.amount.minor > registration.paid_minor - registration.refunded_minor:
        return Decision("deferred_until_payment", processed=False)
    try:
        service.record_refund(str(registration.id), amount=n.amount, reference=reference)
    except RefundExceedsPaid:  # a concurrent refund got there first
        return Decision("deferred_until_payment", processed=False)
    return Decision("refund_recorded")


def is_approval(n: Notification) -> bool:
    """Money that waits for our capture: a PayPal order the payer approved, or
    a PayU order awaiting the shop's confirmation (``authorized``)."""
    return n.kind == "authorized" or (
        n.kind == "pending" and n.provider_event_id.startswith("order:") and n.provider_event_id.endswith(":APPROVED")
    )


class PaymentIntake:
    """Claims facts in the inbox and applies them through the service."""

    def __init__(self, *, service: LedgerService, access: ProviderAccess) -> None:
        self.service = service
        self.access = access
        self.db = access.db

    def receive(
        self,
        connection: Connection,
        notifications: Iterable[Notification],
        *,
        source: str,
        inbox_id: int | None = None,
    ) -> list[Result]:
        return [
            Result(n.provider_event_id, self.handle(connection, n, source=source, inbox_id=inbox_id))
            for n in notifications
        ]

    def handle(self, connection: Connection, n: Notification, *, source: str, inbox_id: int | None = None) -> str:
        """Apply one fact at most once; returns its outcome.

        Provider errors during a capture (outage, refusal) and version
        conflicts propagate with the fact left unprocessed, so the provider's
        redelivery, the participant's return or the reconciler retries it.
        A business rule refusing the command ends the fact as
        ``refused_<code>``: retrying could not change the answer.
        """
        state = inbox.claim_fact(self.db, connection_id=connection.id, notification=n, source=source, inbox_id=inbox_id)
        if state.processed:
            return f"duplicate:{state.outcome}"
        registration = self._registration_for(connection, n)
        if registration is None:
            decision = Decision("unknown_registration")
        elif is_approval(n):
            decision = self._capture(connection, n, registration)
        else:
            try:
                decision = decide(self.service, n, registration)
            except VersionConflict:
                raise  # contention: try again later
            except LedgerError as exc:  # a rule refused it; no retry will change that
                decision = Decision(f"refused_{exc.code}")
        inbox.finish_fact(
            self.db, connection_id=connection.id, notification=n, outcome=decision.outcome, processed=decision.processed
        )
        log.info("provider fact %s %s: %s", n.provider, n.provider_event_id, decision.outcome)
        if registration is not None and decision.processed:
            self._after(connection, n, registration, decision)
        return decision.outcome

    def closed_early(self, registration_ids: Iterable[str]) -> None:
        """Registrations were rejected or their event cancelled: the
        reconciler closes their open checkouts at the provider on its next
        pass (:meth:`close_checkout`), so the HTTP request that closed them
        waits for no provider."""
        inbox.poll_soon(self.db, list(registration_ids))

    def close_checkout(self, registration_id: str, *, now: datetime | None = None) -> str | None:
        """Make the registration's open checkout unpayable at the provider when
        its seat hold has ended or the registration no longer waits for money
        (rejected, event cancelled): R20.  Stripe expires the session, PayU
        cancels the order, PayPal's is never captured.  Whatever the provider
        answers (expired, or paid first) is applied like any fact; a payment
        that still arrives later is booked and owed back (R17).  Returns the
        outcome, or ``None`` when nothing was to close.  Raises
        ``ProviderUnavailable`` on an outage (the reconciler tries again)."""
        row = inbox.find_checkout(self.db, registration_id)
        if row is None or not inbox.checkout_is_open(self.db, registration_id):
            return None
        try:
            registration = self.service.registration(registration_id)
        except NotFound:
            return None
        if registration.paid_minor > 0 or registration.confirmed:
            return None  # money came (or the organizer let them in): nothing to end
        lapsed = row.expires_at is not None and row.expires_at <= (now or self.service.clock())
        if registration.status == "awaiting_payment" and not lapsed:
            return None
        connection = self.access.connection(row.connection_id)
        gateway = self.access.gateway(row.provider)
        ended = gateway.expire_checkout(self.access.credentials(connection.id), row.reference)
        if ended is None or ended.kind == "pending":
            outcome = "checkout_closed"
        else:
            outcome = self.handle(connection, ended, source="expiry")
        inbox.settle_checkout(self.db, registration_id, "expired" if lapsed else "closed", reference=row.reference)
        return outcome

    def retry_unprocessed(
        self,
        *,
        registration_id: str | None = None,
        limit: int = 100,
        min_age: timedelta = timedelta(0),
        max_attempts: int = 50,
    ) -> int:
        """Apply facts left deferred or interrupted; returns how many applied."""
        applied = 0
        for connection_id, n in inbox.unprocessed_facts(
            self.db, registration_id=registration_id, limit=limit, min_age=min_age, max_attempts=max_attempts
        ):
            try:
                connection = self.access.connection(connection_id)
            except NotFound:
                inbox.finish_fact(
                    self.db, connection_id=connection_id, notification=n, outcome="unknown_connection", processed=True
                )
                continue
            try:
                outcome = self.handle(connection, n, source="retry")
            except Exception:  # left unprocessed: the next pass tries again
                log.exception("retrying provider fact %s failed", n.provider_event_id)
                continue
            if not outcome.startswith(("deferred", "duplicate")):
                applied += 1
        return applied

    # -- steps ----------------------------------------------------------------

    def _registration_for(self, connection: Connection, n: Notification) -> Registration | None:
        """The registration the fact is about, if it is this connection's.

        A signed notification proves only that it came from *this
        organizer's* provider account, so it may only touch that organizer's
        registrations paid through that provider: an organizer cannot mark
        another organizer's participants paid with their own keys.
        """
        rid = n.registration_id
        if rid is None:
            row = inbox.find_checkout_by_reference(self.db, n.provider, n.reference)
            rid = row.registration_id if row else None
        if rid is None:
            return None
        try:
            registration = self.service.registration(rid)
        except NotFound:
            return None
        if registration.organizer_id != connection.organizer_id or registration.provider != connection.provider:
            log.warning("provider fact %s names a registration of another account; ignored", n.provider_event_id)
            return None
        return registration

    def _capture(self, connection: Connection, n: Notification, registration: Registration) -> Decision:
        """Capture an approved PayPal order, or confirm a PayU order awaiting
        confirmation -- only while the registration still waits for its money
        and holds its seat, so a closed one is never charged.  Money held for
        the shop's confirmation (``authorized``) is first recorded
        (``PaymentAuthorized``), and released at the provider when it cannot
        be taken (the payer gets it back from the provider, not from the
        organizer)."""
        gateway = self.access.gateway(connection.provider)
        if not isinstance(gateway, CapturingGateway):
            return Decision("pending")
        rid = str(registration.id)
        if n.kind == "authorized" and n.amount is not None:
            self.service.record_payment_authorization(rid, amount=n.amount, provider=n.provider,
                                                      reference=n.reference)
        paid_event = self.service.event(registration.event_id)
        lapsed = rid not in paid_event.sold and not paid_event.holds_seat(rid, self.service.clock())
        current = registration.checkout["reference"] if registration.checkout else n.reference
        if current != n.reference:
            # An earlier order of this registration (e.g. PayPal created a second
            # one because a retry came after its 6-hour PayPal-Request-Id): only
            # the current checkout is ever captured, so nobody pays twice.
            ended = gateway.expire_checkout(self.access.credentials(connection.id), n.reference)
            if ended is None or ended.kind in ("pending", "authorized"):
                return Decision("not_captured_earlier_checkout")
            return Decision(f"not_captured_earlier_checkout:{self.handle(connection, ended, source='expiry')}")
        if registration.status != "awaiting_payment" or lapsed:
            # R20: the seat's hold ended (or the registration no longer waits
            # for money), so the order ends: never take money for a seat that
            # may be someone else's now.  PayPal's is simply never captured.
            why = "hold_lapsed" if registration.status == "awaiting_payment" else registration.status
            if n.kind != "authorized" and registration.status != "awaiting_payment":
                return Decision(f"not_captured_{why}")
            ended = gateway.expire_checkout(self.access.credentials(connection.id), n.reference)
            if ended is None or ended.kind in ("pending", "authorized"):
                return Decision(f"not_captured_{why}")
            return Decision(f"not_captured_{why}:{self.handle(connection, ended, source='expiry')}")
        captured = gateway.capture(self.access.credentials(connection.id), n.reference)
        return Decision(f"captured:{self.handle(connection, captured, source='capture')}")

    def _after(self, connection: Connection, n: Notification, registration: Registration, decision: Decision) -> None:
        rid = str(registration.id)
        if decision.outcome.startswith("payment_recorded") or decision.outcome == "superseded_by_payment":
            inbox.settle_checkout(self.db, rid, "paid")
            # A refund that arrived before this payment can apply now.
            self.retry_unprocessed(registration_id=rid)
        elif decision.outcome in ("payment_failed", "payment_expired"):
            inbox.settle_checkout(self.db, rid, n.kind, reference=n.reference)
