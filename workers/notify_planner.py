"""What e-mails each fact implies (R11–R15, R17, R19; and, to the organizer's
contact e-mail, disputes, reversals and failed refunds: issue 18), decided in
log order.

For every notification the planner first **decides**, outside any transaction:
it reads what the fact needs from the event store (aggregates at the event's
version, the organizer, the paid event) and, for a reschedule, who is still
open.  Then, in **one** PostgreSQL transaction on one connection, it:

1. locks its position row (``notify_position``) and skips the notification if
   another notify process already passed it;
2. writes the e-mails the fact implies into ``notify_outbox`` (``pending``),
   each under a ``dedupe_key`` that names the fact — so one fact is one e-mail
   whatever happens, and a registration that becomes paid *and* confirmed gets
   one confirmation (``confirmation:<registration>``);
3. issues or revokes access-token hashes and keeps ``notify_registrations`` (who
   is still open, for R13 fan-out) up to date;
4. advances the position.

A crash before the commit loses nothing (the notification is read again); after
it, nothing is planned twice.  Sending is a separate step (workers/notify_sender.py).

Why decide first: the event store is another connection pool.  A transaction
that holds locks (position row, ``access_tokens`` rows) while it waits for an
event-store read makes a cycle through the application that PostgreSQL cannot
detect — the first release wedged that way when start-up DDL queued an
ACCESS EXCLUSIVE lock on ``ledger_events`` (issue 11).  So the transaction only
ever waits on its own connection.  What was read before it can only be stale
for a reschedule (another notify process may have changed who is open in
between): that set is read again under the position lock and, if it changed,
the decision is made again (at most :data:`DECIDE_ATTEMPTS` times).

The planner reads aggregates *at the version of the event* where it matters
(money amounts in a confirmation, a rejection, a cancellation), so what an
e-mail says does not depend on how far behind the worker is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from uuid import UUID

import psycopg
from eventsourcing.persistence import Notification
from psycopg.types.json import Jsonb

from ledger import access_tokens, owed_back
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.erasure import purge_outbox
from ledger.event_log import LogItem, to_item
from workers.email_templates import resolve_language

if TYPE_CHECKING:
    from ledger.container import Ledger

log = logging.getLogger(__name__)

Conn = psycopg.Connection[Any]


def mail_domain(public_url: str) -> str:
    """The right-hand side of Message-IDs and of the From address."""
    return urlparse(public_url).hostname or "ledger.localhost"


#: Decisions made again at most this many times when who is open changed meanwhile.
DECIDE_ATTEMPTS = 5

#: One write of a decision, run inside the planning transaction.
Write = Callable[[Conn], object]


@dataclass(frozen=True)
class PlannedEmail:
    dedupe_key: str
    kind: str
    registration_id: str
    recipient: str
    context: dict[str, Any]
    #: Set for an e-mail to the organizer (its contact address) about the registration.
    organizer_id: str | None = None


#: Provider corrections the organizer is told about (issue 18 item 2): event
#: class → e-mail kind (a resolved dispute by its outcome).
ORGANIZER_KINDS: dict[type[Any], str] = {
    Registration.PaymentDisputed: "organizer_dispute_opened",
    Registration.DisputeFundsWithdrawn: "organizer_funds_withdrawn",
    Registration.PaymentReversed: "organizer_payment_reversed",
    Registration.RefundFailed: "organizer_refund_failed",
}


@dataclass(frozen=True)
class Decision:
    """What one fact implies, decided before the planning transaction: the
    writes to run in it, the e-mails to plan, and for a reschedule the set of
    open registrations the fan-out was computed for (event id, ids)."""

    writes: Sequence[Write] = ()
    emails: Sequence[PlannedEmail] = ()
    fan_out: tuple[str, tuple[str, ...]] | None = None


class Planner:
    def __init__(self, ledger: Ledger, *, worker: str = "notify") -> None:
        self.ledger = ledger
        self.worker = worker
        self.domain = mail_domain(ledger.settings.public_url)

    def position(self) -> int:
        with self.ledger.db.transaction() as conn:
            row = conn.execute("SELECT position FROM notify_position WHERE worker = %s",
                               (self.worker,)).fetchone()
        return int(row[0]) if row else 0

    def handle(self, notification: Notification) -> int:
        """Plan one notification; return how many e-mails it added."""
        try:
            item: LogItem | None = to_item(self.ledger.store, notification)
        except KeyError:  # an event type this checkout does not publish: nothing to send
            item = None
        for _ in range(DECIDE_ATTEMPTS):
            decision = self._decide(item) if item is not None else Decision()  # no transaction open
            with self.ledger.db.transaction() as conn:
                conn.execute("INSERT INTO notify_position (worker, position) VALUES (%s, 0)"
                             " ON CONFLICT DO NOTHING", (self.worker,))
                row = conn.execute("SELECT position FROM notify_position WHERE worker = %s FOR UPDATE",
                                   (self.worker,)).fetchone()
                assert row is not None
                if int(row[0]) >= notification.id:
                    return 0  # another notify process got here first
                if not self._still_valid(conn, decision):
                    continue  # who is open changed since the decision: decide again
                for write in decision.writes:
                    write(conn)
                added = sum(self._insert(conn, item, email) for email in decision.emails) if item else 0
                conn.execute("UPDATE notify_position SET position = %s WHERE worker = %s",
                             (notification.id, self.worker))
            return added
        raise RuntimeError(f"notify: the open registrations kept changing while planning {notification.id}")

    # --- facts -----------------------------------------------------------------------

    def _decide(self, item: LogItem) -> Decision:
        """What the fact implies: every event-store read happens here, before
        the planning transaction opens (module doc)."""
        event = item.domain_event
        rid = item.aggregate_id
        at = item.occurred_at
        if isinstance(event, Registration.Registered):
            registered = (rid, event.event_id, event.organizer_id)
            return Decision(writes=[lambda conn: conn.execute(
                "INSERT INTO notify_registrations (registration_id, event_id, organizer_id, is_open)"
                " VALUES (%s, %s, %s, true) ON CONFLICT (registration_id) DO NOTHING", registered)])
        if isinstance(event, Registration.PaymentRecorded | Registration.Confirmed):
            reg = self._registration_at(item)
            writes: list[Write] = [partial(self._set_open, reg=reg)]
            emails: list[PlannedEmail] = []
            if reg.keeps_ticket:  # not a part payment, nor money that found no seat (R9)
                writes.append(partial(self._issue, reg=reg, at=at))
                emails.append(self._email("confirmation", f"confirmation:{rid}", reg, {}))
            if isinstance(event, Registration.PaymentRecorded):
                emails += self._owed_back(item, event, reg)  # R17: reads before the transaction
            return Decision(writes=writes, emails=emails)
        if isinstance(event, Registration.ConfirmationResendRequested):
            reg = self._registration_at(item)
            return Decision(writes=[partial(self._issue, reg=reg, at=at)],
                            emails=[self._email("resend", f"resend:{item.id}", reg, {})])
        if isinstance(event, Registration.Rejected | Registration.Cancelled):
            reg = self._registration_at(item)
            before = self._registration_at(item, offset=1)
            reason = "rejected" if isinstance(event, Registration.Rejected) else "event_cancelled"
            kind = "rejection" if reason == "rejected" else "cancellation"
            extra = {"reason": event.reason, "had_ticket": before.keeps_ticket}
            return Decision(
                writes=[partial(self._set_open, reg=reg),
                        partial(access_tokens.revoke_registration, registration_id=rid, reason=reason, at=at)],
                emails=[self._email(kind, f"{kind}:{item.id}", reg, extra)],
            )
        if isinstance(event, Registration.RefundRecorded):
            reg = self._registration_at(item)
            before = self._registration_at(item, offset=1)
            writes = [partial(self._set_open, reg=reg)]
            if not reg.is_open:  # R19: only a refund that ends access takes the token away
                writes.append(partial(access_tokens.revoke_registration, registration_id=rid, reason="refunded",
                                      at=at))
            extra = {"refund_minor": event.amount_minor, "keeps_ticket": reg.keeps_ticket,
                     "access_ended": before.keeps_ticket and not reg.keeps_ticket}
            return Decision(writes=writes, emails=[self._email("refund", f"refund:{item.id}", reg, extra)])
        if isinstance(event, Registration.DisputeResolved) or type(event) in ORGANIZER_KINDS:
            return self._provider_correction(item, event)
        if isinstance(event, PaidEvent.Rescheduled):
            return self._reschedule(item, event)
        if isinstance(event, Registration.PersonalDataErased):
            # R24: what is still queued for the participant is dropped (the
            # erasure use case did it already; this also catches an e-mail
            # planned from an older read while the erasure ran).
            return Decision(writes=[partial(purge_outbox, registration_ids=[rid])])
        if isinstance(event, PaidEvent.Cancelled):
            return Decision(writes=[partial(access_tokens.revoke_event, event_id=rid, reason="event_cancelled",
                                            at=at)])
        return Decision()

    def _provider_correction(self, item: LogItem, event: Any) -> Decision:
        """Issue 18 item 2: a dispute opened, money withdrawn, a dispute won or
        lost, a payment reversed, a refund that failed -- the organizer is
        told at its contact e-mail, one e-mail per fact (``<kind>:<event id>``).
        A lost dispute or a reversal also closes the registration: it leaves
        the reschedule fan-out and its access tokens are revoked."""
        reg = self._registration_at(item)
        before = self._registration_at(item, offset=1)
        writes: list[Write] = [partial(self._set_open, reg=reg)]
        if before.is_open and not reg.is_open:
            writes.append(partial(access_tokens.revoke_registration, registration_id=item.aggregate_id,
                                  reason=reg.closed_reason or "closed", at=item.occurred_at))
        if isinstance(event, Registration.DisputeResolved):
            kind = f"organizer_dispute_{'won' if event.outcome == 'won' else 'lost'}"
        else:
            kind = ORGANIZER_KINDS[type(event)]
        dispute_id = str(getattr(event, "dispute_id", None) or getattr(event, "reversal_id", ""))
        dispute = reg.disputes.get(dispute_id, {})
        extra: dict[str, Any] = {
            "occurred_at": item.occurred_at.isoformat(),
            "amount_minor": getattr(event, "amount_minor", None) or dispute.get("amount_minor") or 0,
            "dispute_reason": dispute.get("reason"),
            "withdrawn_minor": reg.withdrawn_minor,
            "fee_reversed_minor": getattr(event, "fee_reversed_minor", 0),
            "access_ended": before.keeps_ticket and not reg.keeps_ticket,
            "reference": getattr(event, "reference", None) or "",
        }
        if isinstance(event, Registration.PaymentDisputed):
            extra["provider"] = event.provider
        email = self._organizer_email(kind, f"{kind}:{item.id}", reg, extra)
        return Decision(writes=writes, emails=[email] if email is not None else [])

    def _organizer_email(self, kind: str, dedupe_key: str, reg: Registration,
                         extra: dict[str, Any]) -> PlannedEmail | None:
        """An e-mail to the organizer about ``reg``; None when the organizer has
        no contact e-mail.  The participant is named only by the name the
        organizer already sees (None once erased: "a participant")."""
        organizer = self.ledger.service.organizer(reg.organizer_id)
        if not organizer.email:
            return None
        planned = self._email(kind, dedupe_key, reg, extra)
        context = {**planned.context, "language": resolve_language(None, organizer.country),
                   "audience": "organizer"}
        return PlannedEmail(dedupe_key=dedupe_key, kind=kind, registration_id=str(reg.id),
                            recipient=organizer.email, context=context, organizer_id=str(organizer.id))

    def _reschedule(self, item: LogItem, event: PaidEvent.Rescheduled) -> Decision:
        """R13: every registration of the event still open at this point of the
        log (checked again under the position lock, see :meth:`handle`)."""
        with self.ledger.db.transaction() as conn:
            open_ids = self._open_registrations(conn, item.aggregate_id)
        paid_event: PaidEvent = self.ledger.store.repository.get(UUID(item.aggregate_id),
                                                                 version=item.aggregate_version)
        planned = []
        for rid in open_ids:
            reg = self.ledger.service.registration(rid)
            extra = {"session_id": event.session_id, "starts_at": event.starts_at,
                     "previous_starts_at": event.previous_starts_at, "has_ticket": reg.keeps_ticket}
            planned.append(self._email("reschedule", f"reschedule:{item.id}:{rid}", reg, extra,
                                       paid_event=paid_event))
        return Decision(emails=planned, fan_out=(item.aggregate_id, open_ids))

    def _still_valid(self, conn: Conn, decision: Decision) -> bool:
        if decision.fan_out is None:
            return True
        event_id, open_ids = decision.fan_out
        return self._open_registrations(conn, event_id) == open_ids

    @staticmethod
    def _open_registrations(conn: Conn, event_id: str) -> tuple[str, ...]:
        rows = conn.execute(
            "SELECT registration_id FROM notify_registrations WHERE event_id = %s AND is_open"
            " ORDER BY registration_id", (event_id,),
        ).fetchall()
        return tuple(str(rid) for (rid,) in rows)

    def _owed_back(self, item: LogItem, event: Registration.PaymentRecorded,
                   reg: Registration) -> list[PlannedEmail]:
        """R17, item 5: one e-mail per payment that left money owed back -- it
        found no seat, came after the cancel or the rejection, or the ticket was
        already paid (paid twice, or more than the price).  A part payment still
        waiting for the rest is not told (it will pay for the ticket)."""
        if reg.is_open and not owed_back.holds_paid_ticket(reg):
            return []
        before = self._registration_at(item, offset=1)
        # Part payments that were waiting for the rest were not yet told: the
        # payment that settles them tells all of what is owed.
        told = before.refund_due_minor if not before.is_open or owed_back.holds_paid_ticket(before) else 0
        owed = reg.refund_due_minor - told
        if owed <= 0:
            return []
        if reg.is_open:
            why = "paid_twice" if owed_back.holds_paid_ticket(before) else "excess"
        else:
            why = {"capacity_exhausted": "no_seat", "event_cancelled": "event_cancelled",
                   "rejected": "rejected"}.get(reg.closed_reason or "", "closed")
        extra = {"why": why, "payment_minor": event.amount_minor, "owed_minor": owed,
                 "provider": event.provider, "keeps_ticket": reg.keeps_ticket}
        return [self._email("owed_back", f"owed_back:{item.id}", reg, extra)]

    # --- helpers ----------------------------------------------------------------------

    def _registration_at(self, item: LogItem, *, offset: int = 0) -> Registration:
        reg: Registration = self.ledger.store.repository.get(UUID(item.aggregate_id),
                                                             version=item.aggregate_version - offset)
        assert isinstance(reg, Registration)
        return reg

    @staticmethod
    def _set_open(conn: Conn, reg: Registration) -> None:
        conn.execute(
            "INSERT INTO notify_registrations (registration_id, event_id, organizer_id, is_open)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (registration_id) DO UPDATE SET is_open = EXCLUDED.is_open",
            (str(reg.id), reg.event_id, reg.organizer_id, reg.is_open),
        )

    def _issue(self, conn: Conn, reg: Registration, at: datetime) -> None:
        access_tokens.issue(conn, secret_key=self.ledger.settings.secret_key,
                            registration_id=str(reg.id), event_id=reg.event_id, at=at)

    def _email(self, kind: str, dedupe_key: str, reg: Registration, extra: dict[str, Any],
               *, paid_event: PaidEvent | None = None) -> PlannedEmail:
        """Everything the templates need, frozen now — except the token, which is
        re-derived at send time so that it is never stored in clear."""
        service = self.ledger.service
        paid_event = paid_event or service.event(reg.event_id)
        organizer = service.organizer(reg.organizer_id)
        context = {
            "language": resolve_language(reg.language, organizer.country),
            "name": reg.name,
            "organizer": organizer.name,
            "registration_id": str(reg.id),
            "event": {"id": str(paid_event.id), "title": paid_event.title,
                      "timezone": paid_event.timezone, "permanent": paid_event.permanent,
                      "sessions": [dict(s) for s in paid_event.sessions]},
            "currency": reg.currency,
            "provider": reg.provider,
            "price_minor": reg.price_minor,
            "paid_minor": reg.paid_minor,
            "refunded_minor": reg.refunded_minor,
            "refund_due_minor": reg.refund_due_minor,
            **extra,
        }
        return PlannedEmail(dedupe_key=dedupe_key, kind=kind, registration_id=str(reg.id),
                            recipient=reg.email or "", context=context)

    def _insert(self, conn: Conn, item: LogItem, email: PlannedEmail) -> int:
        """Message-ID = ``<kind.trigger-event-id.registration-id@domain>``: derived
        from the triggering event, so a re-send after a crash carries the same one."""
        if not email.recipient:
            return 0  # erased (R24): nobody to write to, and nothing of theirs is kept
        message_id = f"<{email.kind}.{item.id}.{email.registration_id}@{self.domain}>"
        cursor = conn.execute(
            "INSERT INTO notify_outbox (dedupe_key, message_id, kind, registration_id, trigger_event_id,"
            " trigger_position, recipient, context, composed_at, organizer_id)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (email.dedupe_key, message_id, email.kind, email.registration_id, item.id, item.position,
             email.recipient, Jsonb(email.context), item.occurred_at, email.organizer_id),
        )
        return cursor.rowcount
