"""A participant's registration and the money that moved for it (R11–R15).

Status is *derived* from the facts recorded, never stored as a separate truth:

* open (not rejected / cancelled / refunded): ``confirmed`` if the organizer
  confirmed it, else ``paid`` once the price is paid, else ``awaiting_payment``;
* closed: ``refund_due`` while money received exceeds money refunded, else
  ``refunded`` if money was ever received, else ``rejected`` / ``cancelled``.

``refund_due`` as an *amount* is what the organizer owes back (R17): everything
received minus everything refunded minus the *ticket money* -- the money that
pays for the ticket the registration holds.  Which money is which, and how
refunds are taken, is decided by :mod:`ledger.owed_back`; the service fee is
charged on ticket money only (R18, :mod:`ledger.fee_policy`).  A partial refund
keeps the ticket unless the organizer says it ends access (R19).
See docs/registration-states.md for the diagram and docs/money.md for examples.

Old stored events keep their meaning through upcasters: a v1 refund always
closed the registration (``ends_access`` True), v1 rejections and cancellations
reversed no fee, and every v1 fee figure stays as stored, named ``fee-v1``.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from ledger import owed_back
from ledger.errors import (
    AmountMismatch,
    CurrencyMismatch,
    InvalidState,
    PaymentReferenceConflict,
    RefundExceedsPaid,
    RefundReferenceConflict,
)
from ledger.fee_policy import DEFAULT_FEE_POLICY, FEE_V1, FeePolicy
from ledger.money import Money, check_bounded
from ledger.providers.registry import PROVIDERS

OPEN_STATUSES = ("awaiting_payment", "paid", "confirmed")

#: Closed by the payment provider, not the organizer: a dispute (chargeback)
#: lost or a payment reversed (issue 18).  The ticket is gone and its access
#: ends; status ``dispute_lost`` once nothing is owed back.
PROVIDER_CLOSED = ("dispute_lost", "reversed")


class Registration(Aggregate):
    class Registered(Aggregate.Created):
        """v2 added ``language`` (``None`` = organizer's country decides).  v3:
        ``name``, ``email`` and ``fields`` are stored sealed under the
        registration's data key (``ledger.personal_data``, R24) and read as
        ``None`` once erased; the stored v2 clear text reads the same way."""

        class_version = 3
        event_id: str
        organizer_id: str
        name: str | None
        email: str | None
        fields: dict[str, str] | None
        language: str | None
        price_minor: int
        currency: str
        provider: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["language"] = None

        @staticmethod
        def upcast_v2_v3(state: dict[str, Any]) -> None:
            """Only the stored form changed (sealed); the mapper reads both."""

    @event(Registered)
    def __init__(
        self, event_id: str, organizer_id: str, name: str | None, email: str | None,
        fields: dict[str, str] | None, language: str | None, price_minor: int, currency: str, provider: str,
    ) -> None:
        self.event_id = event_id
        self.organizer_id = organizer_id
        self.name = name
        self.email = email
        self.fields = dict(fields) if fields is not None else None
        # Erased (R24): the data key is destroyed, or the fields already read as erased.
        self.erased = name is None and email is None
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
        self.ticket_minor = 0
        self.fee_minor = 0
        self.refunded_minor = 0
        self.fee_reversed_minor = 0
        self.confirmed = False
        self.closed_reason: str | None = None
        self.close_note: str | None = None
        self.resends = 0
        self.email_failures: list[dict[str, Any]] = []
        self.erasure_id: str | None = None

    @classmethod
    def register(cls, *, id: UUID, **kwargs: Any) -> Registration:
        """What ``cls._create(cls.Registered, id=id, **kwargs)`` makes -- the
        same ``Registered`` event, applied by its own ``mutate`` and left
        pending -- without the generality every registration paid for (a
        third of its CPU): no id to derive (it is given), no explicit topic
        to check (none is declared here), the class's topic looked up once.
        A non-UUID ``id`` is refused by the event, as before."""
        created = cls.Registered(
            originator_topic=_REGISTRATION_TOPIC, originator_id=id, originator_version=cls.INITIAL_VERSION,
            timestamp=cls.Registered.create_timestamp(), **kwargs,
        )
        registration = cast(Registration, created.mutate(None))
        registration._pending_events.append(created)
        return registration

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

    #: Failure reasons after which a checkout can no longer be paid: a retry
    #: would only find the same dead session (every provider replays it by our ids).
    CHECKOUT_CLOSED_REASONS = frozenset({"expired", "failed"})

    @property
    def checkout_dead(self) -> bool:
        """Its checkout expired or failed: it can only be paid by registering again."""
        reference = self.checkout["reference"] if self.checkout else None
        return reference is not None and any(
            f["reference"] == reference and f["reason"] in self.CHECKOUT_CLOSED_REASONS for f in self.failures
        )

    @property
    def answers_for_its_email(self) -> bool:
        """Issue 13 item 10: a second registration with this e-mail on the same
        event gets this one back -- unless this one has ended (rejected,
        cancelled, refunded) or its checkout died before anything was paid,
        when registering again is the way to pay."""
        return self.is_open and (self.keeps_ticket or self.paid_minor > 0 or not self.checkout_dead)

    @property
    def keeps_ticket(self) -> bool:
        return self.is_open and (self.paid_minor >= self.price_minor or self.confirmed)

    @property
    def refund_due_minor(self) -> int:
        """Owed back (R17): received, not refunded, paying for no ticket."""
        return owed_back.owed_minor(self)

    @property
    def fee_outstanding_minor(self) -> int:
        """The service fee still charged: charged minus reversed (R16, R18)."""
        return self.fee_minor - self.fee_reversed_minor

    @property
    def status(self) -> str:
        if self.is_open:
            if self.confirmed:
                return "confirmed"
            return "paid" if self.paid_minor >= self.price_minor else "awaiting_payment"
        if self.refund_due_minor > 0:
            return "refund_due"
        if self.closed_reason in PROVIDER_CLOSED:
            return "dispute_lost"
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
        was left (R9): recorded anyway, and owed back.  v2 added ``method`` (how
        the money came when recorded by hand, e.g. "bank transfer"); since v2
        ``fee_minor`` is charged on ticket money only (``fee-v2``, R18)."""

        class_version = 2
        amount_minor: int
        currency: str
        provider: str
        method: str | None
        reference: str
        fee_minor: int
        fee_policy: str
        seat_granted: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            # The first release took any text as a hand-recorded payment's
            # provider ("wire"): such a payment was a manual one, made that way.
            if state["provider"] in PROVIDERS:
                state["method"] = None
            else:
                state["method"], state["provider"] = state["provider"], "manual"

    def record_payment(
        self, amount: Money, provider: str, reference: str, *, seat_granted: bool,
        method: str | None = None, policy: FeePolicy = DEFAULT_FEE_POLICY,
    ) -> bool:
        """Record any real payment (R17): whatever does not pay for the ticket is
        owed back.  Idempotent per (provider, reference): a repeat returns False
        and records nothing."""
        if amount.currency != self.currency:
            raise CurrencyMismatch(self.currency, amount.currency)
        check_bounded(amount)  # R21: before it can become an event
        if amount.minor <= 0:
            raise AmountMismatch("a payment must be positive", field="amount")
        if self.has_payment(provider, reference, amount):
            return False
        after = owed_back.after_payment(self, amount.minor, seat_granted=seat_granted)
        self._payment_recorded(
            amount_minor=amount.minor, currency=amount.currency, provider=provider, method=method,
            reference=reference,
            fee_minor=policy.charge(outstanding=self.fee_outstanding_minor, ticket_after=after.ticket_minor),
            fee_policy=policy.version, seat_granted=seat_granted,
        )
        return True

    @event(PaymentRecorded)
    def _payment_recorded(
        self, amount_minor: int, currency: str, provider: str, method: str | None, reference: str,
        fee_minor: int, fee_policy: str, seat_granted: bool,
    ) -> None:
        self.payments.append(
            {"amount_minor": amount_minor, "provider": provider, "method": method, "reference": reference,
             "fee_minor": fee_minor, "fee_policy": fee_policy}
        )
        after = owed_back.after_payment(self, amount_minor, seat_granted=seat_granted)
        self.paid_minor += amount_minor
        self.fee_minor += fee_minor
        self.ticket_minor, self.closed_reason = after.ticket_minor, after.closed_reason

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

    class PaymentAuthorized(Aggregate.Event):
        """The provider holds the payer's money until the shop confirms it (PayU
        WAITING_FOR_CONFIRMATION; issue 18).  Nothing is booked: the ledger
        then confirms it (a ``PaymentRecorded`` follows) while the seat is
        held, or releases it at the provider (a ``PaymentFailed`` follows) and
        the provider gives the money back to the payer."""

        class_version = 1
        amount_minor: int
        currency: str
        provider: str
        reference: str

    @property
    def authorizations(self) -> list[dict[str, Any]]:
        """Money held by the provider for the shop's confirmation (beside the
        state, so older snapshots load)."""
        found: list[dict[str, Any]] = vars(self).setdefault("_authorizations", [])
        return found

    def record_authorization(self, amount: Money, provider: str, reference: str) -> bool:
        """Idempotent per (provider, reference)."""
        check_bounded(amount)
        if any(a["provider"] == provider and a["reference"] == reference for a in self.authorizations):
            return False
        self._payment_authorized(amount_minor=amount.minor, currency=amount.currency, provider=provider,
                                 reference=reference)
        return True

    @event(PaymentAuthorized)
    def _payment_authorized(self, amount_minor: int, currency: str, provider: str, reference: str) -> None:
        self.authorizations.append(
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
        """v2: a ticket lost after payment gives its whole fee back, as part of
        this fact (``fee_reversed_minor``, R18); v1 rejections reversed none."""

        class_version = 2
        reason: str
        fee_reversed_minor: int
        fee_policy: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["fee_reversed_minor"] = 0
            state["fee_policy"] = FEE_V1

    def reject(self, reason: str, *, policy: FeePolicy = DEFAULT_FEE_POLICY) -> None:
        if not self.is_open:
            raise InvalidState(f"a {self.status} registration cannot be rejected")
        self._rejected(reason=reason, fee_reversed_minor=self._fee_back_on_close(policy), fee_policy=policy.version)

    @event(Rejected)
    def _rejected(self, reason: str, fee_reversed_minor: int, fee_policy: str) -> None:
        self._close("rejected", reason, fee_reversed_minor)

    class Cancelled(Aggregate.Event):
        """The event was cancelled (R15).  v2 as ``Rejected``: the whole fee of a
        ticket lost after payment is given back with it."""

        class_version = 2
        reason: str
        fee_reversed_minor: int
        fee_policy: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["fee_reversed_minor"] = 0
            state["fee_policy"] = FEE_V1

    def cancel(self, reason: str, *, policy: FeePolicy = DEFAULT_FEE_POLICY) -> None:
        if self.is_open:
            self._cancelled(reason=reason, fee_reversed_minor=self._fee_back_on_close(policy),
                            fee_policy=policy.version)

    @event(Cancelled)
    def _cancelled(self, reason: str, fee_reversed_minor: int, fee_policy: str) -> None:
        self._close("event_cancelled", reason, fee_reversed_minor)

    def _fee_back_on_close(self, policy: FeePolicy) -> int:
        """R18: closing leaves no ticket money, so no fee may stay charged."""
        return policy.reversal(outstanding=self.fee_outstanding_minor, ticket_after=0)

    def _close(self, reason: str, note: str, fee_reversed_minor: int) -> None:
        self.closed_reason = reason
        self.close_note = note
        self.ticket_minor = 0
        self.fee_reversed_minor += fee_reversed_minor

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
        Shown to the organizer on the registration; it changes no status.  v2:
        ``reason`` (the server's text, which quotes the address) is sealed like
        the participant's name (R24) and reads as ``None`` once erased."""

        class_version = 2
        message_id: str
        kind: str
        smtp_code: int | None
        reason: str | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Only the stored form changed (sealed); the mapper reads both."""

    def record_email_failure(
        self, *, message_id: str, kind: str, smtp_code: int | None, reason: str | None,
    ) -> bool:
        """Idempotent per Message-ID: after a crash the worker may report the same
        failure twice; the second report returns False and records nothing."""
        if any(f["message_id"] == message_id for f in self.email_failures):
            return False
        self._email_delivery_failed(message_id=message_id, kind=kind, smtp_code=smtp_code, reason=reason)
        return True

    @event(EmailDeliveryFailed)
    def _email_delivery_failed(
        self, message_id: str, kind: str, smtp_code: int | None, reason: str | None,
    ) -> None:
        self.email_failures.append(
            {"message_id": message_id, "kind": kind, "smtp_code": smtp_code, "reason": reason,
             "at": self.modified_on.isoformat()}
        )

    # --- erasure (R24) ---------------------------------------------------------------

    class PersonalDataErased(Aggregate.Event):
        """The participant's personal data was erased on request: its data key is
        destroyed, so every sealed field of this registration reads as erased.
        Holds no personal data; tells every copy (views, Kafka consumers) to
        erase theirs.  Money, statuses and fees are untouched."""

        erasure_id: str
        erased_fields: list[str]

    #: What an erasure removes, as named in its event and receipt.
    ERASED_FIELDS = ("name", "email", "fields", "email_failures.reason")

    def erase(self, erasure_id: str) -> bool:
        """Idempotent: an erased registration records nothing again (False)."""
        if self.erased and self.erasure_id is not None:
            return False
        self._personal_data_erased(erasure_id=erasure_id, erased_fields=list(self.ERASED_FIELDS))
        return True

    @event(PersonalDataErased)
    def _personal_data_erased(self, erasure_id: str, erased_fields: list[str]) -> None:
        self.name = self.email = None
        self.fields = None
        self.erased = True
        self.erasure_id = erasure_id
        for failure in self.email_failures:
            failure["reason"] = None

    # --- refunds (R15) --------------------------------------------------------------

    class RefundRecorded(Aggregate.Event):
        """A refund made at the provider (R15).  v2 added ``ends_access`` (R19:
        does the participant lose the ticket?) and ``fee_policy``; every v1
        refund closed the registration, so v1 reads as ``ends_access`` True."""

        class_version = 2
        amount_minor: int
        currency: str
        reference: str
        ends_access: bool
        fee_reversed_minor: int
        fee_policy: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["ends_access"] = True
            state["fee_policy"] = FEE_V1

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
        self, amount: Money, reference: str, *, ends_access: bool | None = None,
        policy: FeePolicy = DEFAULT_FEE_POLICY,
    ) -> bool:
        """A refund made at the provider, never more than what was paid and not
        yet refunded.  It is taken from the money owed back first, then from the
        ticket (R17).  ``ends_access`` None: the participant loses the ticket only
        when nothing paid is left (R19); a partial refund keeps it."""
        if amount.currency != self.currency:
            raise CurrencyMismatch(self.currency, amount.currency)
        check_bounded(amount)  # R21
        if amount.minor <= 0:
            raise AmountMismatch("a refund must be positive", field="amount")
        if self.has_refund(reference, amount):
            return False
        refundable = self.paid_minor - self.refunded_minor - self.withdrawn_minor
        if amount.minor > refundable:
            raise RefundExceedsPaid(
                f"at most {self.money(refundable)} can be refunded", field="amount"
            )
        if ends_access is None:
            ends_access = owed_back.ends_access_by_default(self, amount.minor)
        after = owed_back.after_refund(self, amount.minor, ends_access=ends_access)
        self._refund_recorded(
            amount_minor=amount.minor, currency=amount.currency, reference=reference, ends_access=ends_access,
            fee_reversed_minor=policy.reversal(outstanding=self.fee_outstanding_minor,
                                               ticket_after=after.ticket_minor),
            fee_policy=policy.version,
        )
        return True

    @event(RefundRecorded)
    def _refund_recorded(
        self, amount_minor: int, currency: str, reference: str, ends_access: bool, fee_reversed_minor: int,
        fee_policy: str,
    ) -> None:
        self.refunds.append({"amount_minor": amount_minor, "reference": reference, "ends_access": ends_access})
        after = owed_back.after_refund(self, amount_minor, ends_access=ends_access)
        self.refunded_minor += amount_minor
        self.fee_reversed_minor += fee_reversed_minor
        self.ticket_minor, self.closed_reason = after.ticket_minor, after.closed_reason

    # --- provider-side corrections: disputes, reversals, failed refunds (issue 18) ---
    # Kept beside the state (``vars(self)``) rather than in ``__init__``, so
    # snapshots taken before these facts existed still load.

    @property
    def disputes(self) -> dict[str, dict[str, Any]]:
        """Dispute id -> {status, reason, amount_minor, withdrawn_minor,
        reinstated_minor, outcome}; also PayPal reversals (``reversal:`` ids)."""
        found: dict[str, dict[str, Any]] = vars(self).setdefault("_disputes", {})
        return found

    @property
    def withdrawn_minor(self) -> int:
        """Money the provider took back, net of what it reinstated."""
        return sum(d["withdrawn_minor"] - d["reinstated_minor"] for d in self.disputes.values())

    @property
    def failed_refunds(self) -> list[str]:
        """References of recorded refunds the provider reports as failed."""
        found: list[str] = vars(self).setdefault("_failed_refunds", [])
        return found

    @property
    def disputed(self) -> bool:
        """A dispute is open, or was lost: the organizer should look."""
        return any(d["status"] != "won" for d in self.disputes.values())

    def _dispute(self, dispute_id: str) -> dict[str, Any]:
        return self.disputes.setdefault(
            dispute_id, {"status": "open", "reason": None, "amount_minor": 0, "withdrawn_minor": 0,
                         "reinstated_minor": 0, "outcome": None, "from_ticket_minor": 0},
        )

    class PaymentDisputed(Aggregate.Event):
        """The payer disputed a payment with their bank or the provider
        (Stripe ``charge.dispute.created``, PayPal ``CUSTOMER.DISPUTE.CREATED``).
        Moves no money by itself: ``DisputeFundsWithdrawn`` does."""

        class_version = 1
        dispute_id: str
        provider: str
        reference: str
        amount_minor: int
        currency: str
        reason: str | None

    def record_dispute(self, dispute_id: str, provider: str, reference: str, amount: Money,
                       reason: str | None) -> bool:
        """Idempotent per dispute id (a repeated webhook records nothing)."""
        if amount.currency != self.currency:
            raise CurrencyMismatch(self.currency, amount.currency)
        check_bounded(amount)
        if dispute_id in self.disputes:
            return False
        self._payment_disputed(dispute_id=dispute_id, provider=provider, reference=reference,
                               amount_minor=amount.minor, currency=amount.currency, reason=reason)
        return True

    @event(PaymentDisputed)
    def _payment_disputed(self, dispute_id: str, provider: str, reference: str, amount_minor: int, currency: str,
                          reason: str | None) -> None:
        found = self._dispute(dispute_id)
        found.update(reason=reason, amount_minor=amount_minor)

    class DisputeFundsWithdrawn(Aggregate.Event):
        """The provider took the disputed money out of the organizer's balance
        (Stripe ``charge.dispute.funds_withdrawn``; a PayPal reversal is
        ``PaymentReversed``).  Not revenue any more: taken like a refund (owed
        back first, then the ticket), and the fee on ticket money taken is
        given back (R18, ``fee_reversed_minor``).  Access stays until the
        dispute is lost.  v2 added ``disputed``: the registration's marker
        after the fact (a withdrawal for a dispute not yet known opens it), so
        that who paid need not keep every dispute's status."""

        class_version = 2
        dispute_id: str
        amount_minor: int
        currency: str
        fee_reversed_minor: int
        fee_policy: str
        disputed: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["disputed"] = True  # what who paid read v1 withdrawals as

    def record_funds_withdrawn(self, dispute_id: str, amount: Money, *,
                               policy: FeePolicy = DEFAULT_FEE_POLICY) -> bool:
        if amount.currency != self.currency:
            raise CurrencyMismatch(self.currency, amount.currency)
        check_bounded(amount)
        found = self.disputes.get(dispute_id)
        if found is not None and found["withdrawn_minor"] > 0:
            return False  # one withdrawal per dispute
        held = self.paid_minor - self.refunded_minor - self.withdrawn_minor
        if amount.minor <= 0 or amount.minor > held:
            raise AmountMismatch(f"at most {self.money(held)} can be withdrawn", field="amount")
        after = owed_back.after_withdrawal(self, amount.minor)
        self._funds_withdrawn(
            dispute_id=dispute_id, amount_minor=amount.minor, currency=amount.currency,
            fee_reversed_minor=policy.reversal(outstanding=self.fee_outstanding_minor,
                                               ticket_after=after.ticket_minor),
            fee_policy=policy.version,
            disputed=self.disputed or (found or {"status": "open"})["status"] != "won",
        )
        return True

    @event(DisputeFundsWithdrawn)
    def _funds_withdrawn(self, dispute_id: str, amount_minor: int, currency: str, fee_reversed_minor: int,
                         fee_policy: str, disputed: bool) -> None:
        after = owed_back.after_withdrawal(self, amount_minor)
        found = self._dispute(dispute_id)
        found["withdrawn_minor"] += amount_minor
        # what a reinstatement may give back to the ticket (owed_back.after_reinstatement)
        found["from_ticket_minor"] = found.get("from_ticket_minor", 0) + self.ticket_minor - after.ticket_minor
        self.fee_reversed_minor += fee_reversed_minor
        self.ticket_minor, self.closed_reason = after.ticket_minor, after.closed_reason

    class DisputeFundsReinstated(Aggregate.Event):
        """The provider gave withdrawn money back (Stripe
        ``charge.dispute.funds_reinstated``, usually a dispute won).  While the
        registration holds its ticket, it gives the ticket back what the
        withdrawal took from it, with that money's fee charged again
        (``fee_minor``, R18); the rest is owed back, as it was before.  v2
        added ``ticket_minor``: the ticket money after the fact, as the
        aggregate decided it (v1 events replay by the rule they were decided
        by, ``owed_back.after_reinstatement_v1``)."""

        class_version = 2
        dispute_id: str
        amount_minor: int
        currency: str
        fee_minor: int
        fee_policy: str
        ticket_minor: int | None

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["ticket_minor"] = None  # decided by the v1 rule on replay

    def record_funds_reinstated(self, dispute_id: str, amount: Money, *,
                                policy: FeePolicy = DEFAULT_FEE_POLICY) -> bool:
        if amount.currency != self.currency:
            raise CurrencyMismatch(self.currency, amount.currency)
        found = self.disputes.get(dispute_id)
        if found is None or found["reinstated_minor"] > 0:
            return False
        if amount.minor <= 0 or amount.minor > found["withdrawn_minor"]:
            raise AmountMismatch(f"at most {self.money(found['withdrawn_minor'])} can be reinstated",
                                 field="amount")
        after = owed_back.after_reinstatement(self, amount.minor, found.get("from_ticket_minor", 0))
        self._funds_reinstated(
            dispute_id=dispute_id, amount_minor=amount.minor, currency=amount.currency,
            fee_minor=policy.charge(outstanding=self.fee_outstanding_minor, ticket_after=after.ticket_minor),
            fee_policy=policy.version, ticket_minor=after.ticket_minor,
        )
        return True

    @event(DisputeFundsReinstated)
    def _funds_reinstated(self, dispute_id: str, amount_minor: int, currency: str, fee_minor: int,
                          fee_policy: str, ticket_minor: int | None = None) -> None:
        after = owed_back.reinstated_split(self, amount_minor, ticket_minor)
        self._dispute(dispute_id)["reinstated_minor"] += amount_minor
        self.fee_minor += fee_minor
        self.ticket_minor, self.closed_reason = after.ticket_minor, after.closed_reason

    class DisputeResolved(Aggregate.Event):
        """The dispute is closed: ``outcome`` ``won`` (the organizer keeps the
        money) or ``lost`` (the payer keeps it).  A lost dispute ends the
        ticket and its access, like a refund that ends access, and gives back
        the fee still charged (``fee_reversed_minor``, R18).  v2 added
        ``disputed``: the registration's marker after the fact (another
        dispute may still be open or lost when this one is won)."""

        class_version = 2
        dispute_id: str
        outcome: str
        fee_reversed_minor: int
        fee_policy: str
        disputed: bool

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["disputed"] = state["outcome"] == "lost"  # what who paid read v1 resolutions as

    def resolve_dispute(self, dispute_id: str, outcome: str, *, policy: FeePolicy = DEFAULT_FEE_POLICY) -> bool:
        if outcome not in ("won", "lost"):
            raise InvalidState(f"a dispute is won or lost, not {outcome!r}")
        found = self.disputes.get(dispute_id)
        if found is not None and found["outcome"] is not None:
            return False
        fee_back = self._fee_back_on_close(policy) if outcome == "lost" and self.is_open else 0
        others = any(d["status"] != "won" for k, d in self.disputes.items() if k != dispute_id)
        self._dispute_resolved(dispute_id=dispute_id, outcome=outcome, fee_reversed_minor=fee_back,
                               fee_policy=policy.version, disputed=others or outcome != "won")
        return True

    @event(DisputeResolved)
    def _dispute_resolved(self, dispute_id: str, outcome: str, fee_reversed_minor: int, fee_policy: str,
                          disputed: bool) -> None:
        found = self._dispute(dispute_id)
        found.update(status=outcome, outcome=outcome)
        if outcome == "lost" and self.is_open:
            self._close("dispute_lost", "the payer won a dispute with the payment provider", fee_reversed_minor)

    class PaymentReversed(Aggregate.Event):
        """The provider reversed a payment (PayPal ``PAYMENT.CAPTURE.REVERSED``:
        a chargeback or a claim decided for the payer): the money is taken back
        and the ticket, its access and the fee still charged end with it."""

        class_version = 1
        reversal_id: str
        reference: str
        amount_minor: int
        currency: str
        fee_reversed_minor: int
        fee_policy: str

    def record_reversal(self, reversal_id: str, reference: str, amount: Money, *,
                        policy: FeePolicy = DEFAULT_FEE_POLICY) -> bool:
        if amount.currency != self.currency:
            raise CurrencyMismatch(self.currency, amount.currency)
        check_bounded(amount)
        if reversal_id in self.disputes:
            return False
        held = self.paid_minor - self.refunded_minor - self.withdrawn_minor
        if amount.minor <= 0 or amount.minor > held:
            raise AmountMismatch(f"at most {self.money(held)} can be reversed", field="amount")
        fee_back = self._fee_back_on_close(policy) if self.is_open else 0
        self._payment_reversed(reversal_id=reversal_id, reference=reference, amount_minor=amount.minor,
                               currency=amount.currency, fee_reversed_minor=fee_back, fee_policy=policy.version)
        return True

    @event(PaymentReversed)
    def _payment_reversed(self, reversal_id: str, reference: str, amount_minor: int, currency: str,
                          fee_reversed_minor: int, fee_policy: str) -> None:
        found = self._dispute(reversal_id)
        found.update(status="lost", outcome="lost", amount_minor=amount_minor, withdrawn_minor=amount_minor)
        if self.is_open:
            self._close("reversed", "the payment provider reversed the payment", fee_reversed_minor)
        else:
            self.fee_reversed_minor += fee_reversed_minor

    class RefundFailed(Aggregate.Event):
        """A refund recorded earlier failed at the provider (Stripe
        ``refund.failed``, PayU refund CANCELED): the money was never returned.
        The refund no longer counts; its amount is owed back again (R17).  The
        ticket and the fee stay as they were (a failed refund gives no ticket
        back)."""

        class_version = 1
        reference: str
        amount_minor: int
        currency: str

    def record_refund_failure(self, reference: str) -> bool:
        """Idempotent: a refund fails once.  Only a recorded refund can fail."""
        refund = next((r for r in self.refunds if r["reference"] == reference), None)
        if refund is None or reference in self.failed_refunds:
            return False
        self._refund_failed(reference=reference, amount_minor=refund["amount_minor"], currency=self.currency)
        return True

    @event(RefundFailed)
    def _refund_failed(self, reference: str, amount_minor: int, currency: str) -> None:
        self.failed_refunds.append(reference)
        self.refunded_minor -= amount_minor

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "version": self.version,
            "event_id": self.event_id,
            "organizer_id": self.organizer_id,
            "name": self.name,
            "email": self.email,
            "fields": self.fields,
            "erased": self.erased,
            "language": self.language,
            "status": self.status,
            "price": self.price.as_dict(),
            "paid": self.money(self.paid_minor).as_dict(),
            "refunded": self.money(self.refunded_minor).as_dict(),
            "refund_due": self.money(self.refund_due_minor).as_dict(),
            "ticket_money": self.money(self.ticket_minor).as_dict(),
            "fee": self.money(self.fee_outstanding_minor).as_dict(),
            "provider": self.provider,
            "checkout": self.checkout,
            "payments": [
                {"amount": self.money(p["amount_minor"]).as_dict(), "provider": p["provider"],
                 "method": p["method"], "reference": p["reference"],
                 "fee": self.money(p["fee_minor"]).as_dict(), "fee_policy": p["fee_policy"]}
                for p in self.payments
            ],
            "refunds": [
                {"amount": self.money(r["amount_minor"]).as_dict(), "reference": r["reference"],
                 "ends_access": r["ends_access"]}
                for r in self.refunds
            ],
            "payment_failures": list(self.failures),
            "email_failures": list(self.email_failures),
            "payment_mismatches": [
                {"amount": Money(m["amount_minor"], m["currency"]).as_dict(), "provider": m["provider"],
                 "reference": m["reference"], "recorded": self.has_payment(m["provider"], m["reference"])}
                for m in self.mismatches
            ],
            "failed_refunds": list(self.failed_refunds),
            "payment_authorizations": [
                {"amount": Money(a["amount_minor"], a["currency"]).as_dict(), "provider": a["provider"],
                 "reference": a["reference"]}
                for a in self.authorizations
            ],
            "disputed": self.disputed,
            "withdrawn": self.money(self.withdrawn_minor).as_dict(),
            "disputes": [
                {"id": key, "status": d["status"], "reason": d["reason"],
                 "amount": self.money(d["amount_minor"]).as_dict(),
                 "withdrawn": self.money(d["withdrawn_minor"]).as_dict(),
                 "reinstated": self.money(d["reinstated_minor"]).as_dict()}
                for key, d in self.disputes.items()
            ],
            "closed_reason": self.closed_reason,
            "close_note": self.close_note,
            "created_at": self.created_on.isoformat(),
            "updated_at": self.modified_on.isoformat(),
        }


_REGISTRATION_TOPIC = get_topic(Registration)
"""The ``originator_topic`` of every ``Registered`` (what ``_create`` looks up each time)."""
