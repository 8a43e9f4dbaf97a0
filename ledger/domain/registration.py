"""A participant's registration and the money that moved for it (R11–R15).

Status is *derived* from the facts recorded, never stored as a separate truth:

* open (not rejected / cancelled / refunded): ``confirmed`` if the organizer
  confirmed it, else ``paid`` once the price is paid, else ``awaiting_payment``;
* closed: ``refund_due`` while money received exceeds money refunded, else
  ``refunded`` if money was ever received, else ``rejected`` / ``cancelled``.

``refund_due`` as an *amount* is what the organizer owes back: everything
received minus everything refunded minus the price, when a ticket is kept.
See docs/registration-states.md for the diagram.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.errors import (
    AmountMismatch,
    CurrencyMismatch,
    InvalidState,
    PaymentReferenceConflict,
    RefundExceedsPaid,
    RefundReferenceConflict,
)
from ledger.fee_policy import DEFAULT_FEE_POLICY, FeePolicy
from ledger.money import Money, check_bounded

OPEN_STATUSES = ("awaiting_payment", "paid", "confirmed")


class Registration(Aggregate):
    class Registered(Aggregate.Created):
        """v2 added ``language`` (``None`` = organizer's country decides)."""

        class_version = 2
        event_id: str
        organizer_id: str
        name: str
        email: str
        fields: dict[str, str]
        language: str | None
        price_minor: int
        currency: str
        provider: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["language"] = None

    @event(Registered)
    def __init__(
        self, event_id: str, organizer_id: str, name: str, email: str, fields: dict[str, str],
        language: str | None, price_minor: int, currency: str, provider: str,
    ) -> None:
        self.event_id = event_id
        self.organizer_id = organizer_id
        self.name = name
        self.email = email
        self.fields = dict(fields)
        self.language = language
        self.price_minor = price_minor
        self.currency = currency
        self.provider = provider
        self.checkout: dict[str, str] | None = None
        self.payments: list[dict[str, Any]] = []
        self.refunds: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.mismatches: list[dict[str, Any]] = []
        self.paid_minor = 0
        self.fee_minor = 0
        self.refunded_minor = 0
        self.fee_reversed_minor = 0
        self.confirmed = False
        self.closed_reason: str | None = None
        self.close_note: str | None = None
        self.resends = 0
        self.email_failures: list[dict[str, Any]] = []

    @classmethod
    def register(cls, *, id: UUID, **kwargs: Any) -> Registration:
        return cls._create(cls.Registered, id=id, **kwargs)

    # --- derived views --------------------------------------------------------

    @property
    def owner_id(self) -> str:
        """The organizer a scope must allow to see this registration."""
        return self.organizer_id

    @property
    def price(self) -> Money:
        return Money(self.price_minor, self.currency)

    @property
    def is_open(self) -> bool:
        return self.closed_reason is None

    @property
    def keeps_ticket(self) -> bool:
        return self.is_open and (self.paid_minor >= self.price_minor or self.confirmed)

    @property
    def refund_due_minor(self) -> int:
        kept = self.price_minor if self.is_open and self.paid_minor >= self.price_minor else 0
        return max(0, self.paid_minor - self.refunded_minor - kept)

    @property
    def status(self) -> str:
        if self.is_open:
            if self.confirmed:
                return "confirmed"
            return "paid" if self.paid_minor >= self.price_minor else "awaiting_payment"
        if self.refund_due_minor > 0:
            return "refund_due"
        if self.paid_minor > 0:
            return "refunded"
        return "rejected" if self.closed_reason == "rejected" else "cancelled"

    def money(self, minor: int) -> Money:
        return Money(minor, self.currency)

    # --- checkout -----------------------------------------------------------------

    class CheckoutStarted(Aggregate.Event):
        provider: str
        url: str
        reference: str

    def start_checkout(self, provider: str, url: str, reference: str) -> None:
        if self.checkout and self.checkout["reference"] == reference:
            return
        self._checkout_started(provider=provider, url=url, reference=reference)

    @event(CheckoutStarted)
    def _checkout_started(self, provider: str, url: str, reference: str) -> None:
        self.checkout = {"provider": provider, "url": url, "reference": reference}

    # --- payments -----------------------------------------------------------------

    def has_payment(self, provider: str, reference: str, amount: Money | None = None) -> bool:
        """Whether a payment under (provider, reference) is recorded: a repeat.
        With ``amount``, the same reference with another amount is no repeat
        but a conflicting claim on it: ``PaymentReferenceConflict`` (409),
        never a silent no-op."""
        for payment in self.payments:
            if payment["provider"] == provider and payment["reference"] == reference:
                if amount is not None and (amount.currency, amount.minor) != (self.currency, payment["amount_minor"]):
                    raise PaymentReferenceConflict(
                        f"payment {reference!r} is recorded as {self.money(payment['amount_minor'])}, not {amount}",
                        field="reference",
                    )
                return True
        return False

    class PaymentRecorded(Aggregate.Event):
        """Money received.  ``seat_granted`` False means it arrived when no seat
        was left (R9): recorded anyway, and owed back."""

        amount_minor: int
        currency: str
        provider: str
        reference: str
        fee_minor: int
        fee_policy: str
        seat_granted: bool

    def record_payment(
        self, amount: Money, provider: str, reference: str, *, seat_granted: bool,
        exact: bool = True, policy: FeePolicy = DEFAULT_FEE_POLICY,
    ) -> bool:
        """Idempotent per (provider, reference): a repeat returns False, no event."""
        if amount.currency != self.currency:
            raise CurrencyMismatch(self.currency, amount.currency)
        check_bounded(amount)  # R21: before it can become an event
        if amount.minor <= 0:
            raise AmountMismatch("a payment must be positive", field="amount")
        if self.has_payment(provider, reference, amount):
            return False
        if exact and self.is_open and amount.minor != self.price_minor - self.paid_minor:
            raise AmountMismatch(
                f"{self.money(self.price_minor - self.paid_minor)} is due, not {amount}",
                field="amount",
            )
        self._payment_recorded(
            amount_minor=amount.minor, currency=amount.currency, provider=provider,
            reference=reference, fee_minor=policy.fee_for_payment(amount.minor),
            fee_policy=policy.version, seat_granted=seat_granted,
        )
        return True

    @event(PaymentRecorded)
    def _payment_recorded(
        self, amount_minor: int, currency: str, provider: str, reference: str,
        fee_minor: int, fee_policy: str, seat_granted: bool,
    ) -> None:
        self.payments.append(
            {"amount_minor": amount_minor, "provider": provider, "reference": reference,
             "fee_minor": fee_minor}
        )
        self.paid_minor += amount_minor
        self.fee_minor += fee_minor
        if not seat_granted and self.closed_reason is None:
            self.closed_reason = "capacity_exhausted"

    class PaymentMismatched(Aggregate.Event):
        """A provider reported money that is not the price (amount or currency).
        Kept apart from normal payments for the organizer to resolve; it changes
        neither status nor amounts."""

        amount_minor: int
        currency: str
        provider: str
        reference: str

    def record_payment_mismatch(self, amount: Money, provider: str, reference: str) -> bool:
        check_bounded(amount)  # R21: a provider's absurd amount is refused, never stored
        if any(m["provider"] == provider and m["reference"] == reference for m in self.mismatches):
            return False
        self._payment_mismatched(
            amount_minor=amount.minor, currency=amount.currency, provider=provider, reference=reference
        )
        return True

    @event(PaymentMismatched)
    def _payment_mismatched(self, amount_minor: int, currency: str, provider: str, reference: str) -> None:
        self.mismatches.append(
            {"amount_minor": amount_minor, "currency": currency, "provider": provider, "reference": reference}
        )

    class PaymentFailed(Aggregate.Event):
        reason: str
        reference: str

    def record_payment_failure(self, reason: str, reference: str) -> bool:
        if any(f["reference"] == reference and f["reason"] == reason for f in self.failures):
            return False
        self._payment_failed(reason=reason, reference=reference)
        return True

    @event(PaymentFailed)
    def _payment_failed(self, reason: str, reference: str) -> None:
        self.failures.append({"reason": reason, "reference": reference})

    # --- organizer decisions (R12, R14, R15) --------------------------------------

    class Confirmed(Aggregate.Event):
        pass

    def confirm(self) -> None:
        if not self.is_open:
            raise InvalidState(f"a {self.status} registration cannot be confirmed")
        if not self.confirmed:
            self._confirmed()

    @event(Confirmed)
    def _confirmed(self) -> None:
        self.confirmed = True

    class Rejected(Aggregate.Event):
        reason: str

    def reject(self, reason: str) -> None:
        if not self.is_open:
            raise InvalidState(f"a {self.status} registration cannot be rejected")
        self._rejected(reason=reason)

    @event(Rejected)
    def _rejected(self, reason: str) -> None:
        self.closed_reason = "rejected"
        self.close_note = reason

    class Cancelled(Aggregate.Event):
        """The event was cancelled (R15)."""

        reason: str

    def cancel(self, reason: str) -> None:
        if self.is_open:
            self._cancelled(reason=reason)

    @event(Cancelled)
    def _cancelled(self, reason: str) -> None:
        self.closed_reason = "event_cancelled"
        self.close_note = reason

    class ConfirmationResendRequested(Aggregate.Event):
        pass

    def request_resend(self) -> None:
        """R12: only a participant with a ticket has a confirmation to resend."""
        if not self.keeps_ticket:
            raise InvalidState(f"a {self.status} registration has no confirmation to resend")
        self._resend_requested()

    @event(ConfirmationResendRequested)
    def _resend_requested(self) -> None:
        self.resends += 1

    # --- e-mail delivery (R11-R15) ---------------------------------------------------

    class EmailDeliveryFailed(Aggregate.Event):
        """The notify worker could not deliver an e-mail to this participant: the
        mail server refused it permanently (5xx), or kept deferring it for days.
        Shown to the organizer on the registration; it changes no status."""

        message_id: str
        kind: str
        smtp_code: int | None
        reason: str

    def record_email_failure(self, *, message_id: str, kind: str, smtp_code: int | None, reason: str) -> bool:
        """Idempotent per Message-ID: after a crash the worker may report the same
        failure twice; the second report returns False and records nothing."""
        if any(f["message_id"] == message_id for f in self.email_failures):
            return False
        self._email_delivery_failed(message_id=message_id, kind=kind, smtp_code=smtp_code, reason=reason)
        return True

    @event(EmailDeliveryFailed)
    def _email_delivery_failed(self, message_id: str, kind: str, smtp_code: int | None, reason: str) -> None:
        self.email_failures.append(
            {"message_id": message_id, "kind": kind, "smtp_code": smtp_code, "reason": reason,
             "at": self.modified_on.isoformat()}
        )

    # --- refunds (R15) --------------------------------------------------------------

    class RefundRecorded(Aggregate.Event):
        amount_minor: int
        currency: str
        reference: str
        fee_reversed_minor: int

    def has_refund(self, reference: str, amount: Money | None = None) -> bool:
        """Whether a refund under ``reference`` is recorded: a repeat.  With
        ``amount``, the same reference with another amount is refused
        (``RefundReferenceConflict``, 409), never a silent no-op."""
        for refund in self.refunds:
            if refund["reference"] == reference:
                if amount is not None and (amount.currency, amount.minor) != (self.currency, refund["amount_minor"]):
                    raise RefundReferenceConflict(
                        f"refund {reference!r} is recorded as {self.money(refund['amount_minor'])}, not {amount}",
                        field="reference",
                    )
                return True
        return False

    def record_refund(
        self, amount: Money, reference: str, *, policy: FeePolicy = DEFAULT_FEE_POLICY
    ) -> bool:
        """A refund made at the provider, never more than what was paid.  A refund
        on an open registration gives the ticket back (it closes)."""
        if amount.currency != self.currency:
            raise CurrencyMismatch(self.currency, amount.currency)
        check_bounded(amount)  # R21
        if amount.minor <= 0:
            raise AmountMismatch("a refund must be positive", field="amount")
        if self.has_refund(reference, amount):
            return False
        refundable = self.paid_minor - self.refunded_minor
        if amount.minor > refundable:
            raise RefundExceedsPaid(
                f"at most {self.money(refundable)} can be refunded", field="amount"
            )
        reversal = policy.fee_reversal(
            paid_minor=self.paid_minor, fee_minor=self.fee_minor,
            refunded_before=self.refunded_minor, refund_minor=amount.minor,
            reversed_before=self.fee_reversed_minor,
        )
        self._refund_recorded(
            amount_minor=amount.minor, currency=amount.currency, reference=reference,
            fee_reversed_minor=reversal,
        )
        return True

    @event(RefundRecorded)
    def _refund_recorded(
        self, amount_minor: int, currency: str, reference: str, fee_reversed_minor: int
    ) -> None:
        self.refunds.append({"amount_minor": amount_minor, "reference": reference})
        self.refunded_minor += amount_minor
        self.fee_reversed_minor += fee_reversed_minor
        if self.closed_reason is None:
            self.closed_reason = "refunded"

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "version": self.version,
            "event_id": self.event_id,
            "organizer_id": self.organizer_id,
            "name": self.name,
            "email": self.email,
            "fields": self.fields,
            "language": self.language,
            "status": self.status,
            "price": self.price.as_dict(),
            "paid": self.money(self.paid_minor).as_dict(),
            "refunded": self.money(self.refunded_minor).as_dict(),
            "refund_due": self.money(self.refund_due_minor).as_dict(),
            "fee": self.money(self.fee_minor - self.fee_reversed_minor).as_dict(),
            "provider": self.provider,
            "checkout": self.checkout,
            "payments": [
                {"amount": self.money(p["amount_minor"]).as_dict(), "provider": p["provider"],
                 "reference": p["reference"]} for p in self.payments
            ],
            "refunds": [
                {"amount": self.money(r["amount_minor"]).as_dict(), "reference": r["reference"]}
                for r in self.refunds
            ],
            "payment_failures": list(self.failures),
            "email_failures": list(self.email_failures),
            "payment_mismatches": [
                {"amount": Money(m["amount_minor"], m["currency"]).as_dict(), "provider": m["provider"],
                 "reference": m["reference"]} for m in self.mismatches
            ],
            "closed_reason": self.closed_reason,
            "close_note": self.close_note,
            "created_at": self.created_on.isoformat(),
            "updated_at": self.modified_on.isoformat(),
        }
