"""Sending planned e-mails (``notify_outbox``), one at a time, at least once.

**Crash safety.**  A row is picked with ``FOR UPDATE SKIP LOCKED`` and its
transaction stays open while the SMTP server is talked to; the row becomes
``sent`` in that same transaction right after the server's ``250``.  If the
process dies before that commit, PostgreSQL rolls the transaction back, the row
is still ``pending`` and is sent again later — with the same Message-ID, Date
and body (everything is derived from the stored row), so the participant's mail
client can recognise the duplicate.  The window is "server said 250, commit not
yet done": at most one duplicate per crash, never a lost e-mail.  (SMTP has no
two-phase commit; exactly-once across the SMTP boundary is not possible.)

**Ordering and retries.**  E-mails to one registration go out in the order the
facts happened: a row waits while an earlier row of the same registration is
pending, so a cancellation never overtakes its confirmation.  Rows of other
registrations are independent.  A 4xx for one recipient postpones only that
row, with exponential backoff; after ``give_up_after`` of such failures it is
treated as permanent.  An unreachable relay postpones nobody individually: the
worker backs off globally and everything goes out in order when it is back.
A 5xx (or an address that cannot be written in a header) is permanent: it is
recorded on the registration and the row is closed as ``failed``.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from ledger.access_tokens import derive_token
from workers.email_templates import ORGANIZER_SENDER, TEXTS, render
from workers.mailer import Mailer, PermanentFailure, TransientFailure
from workers.notify_planner import mail_domain

if TYPE_CHECKING:
    from ledger.container import Ledger

log = logging.getLogger(__name__)

_PICK = """
SELECT seq, message_id, kind, registration_id, recipient, context, composed_at, attempts,
       first_failed_at, now(), organizer_id,
       EXISTS (SELECT 1 FROM personal_data_keys k
                WHERE k.registration_id = o.registration_id::uuid AND k.erased_at IS NOT NULL)
  FROM notify_outbox o
 WHERE o.state = 'pending' AND o.next_attempt_at <= now()
   AND (o.organizer_id IS NOT NULL  -- the organizer's mail is sent, without the name (R24)
        OR NOT EXISTS (SELECT 1 FROM personal_data_keys k  -- erased (R24): never sent
                        WHERE k.registration_id = o.registration_id::uuid AND k.erased_at IS NOT NULL))
   AND (o.organizer_id IS NOT NULL
        OR NOT EXISTS (SELECT 1 FROM notify_outbox p
                        WHERE p.registration_id = o.registration_id AND p.organizer_id IS NULL
                          AND p.state = 'pending' AND p.seq < o.seq))
   AND (o.organizer_id IS NULL
        OR NOT EXISTS (SELECT 1 FROM notify_outbox p
                        WHERE p.organizer_id = o.organizer_id AND p.state = 'pending' AND p.seq < o.seq))
 ORDER BY o.seq
 LIMIT 1
   FOR UPDATE SKIP LOCKED
"""


class Outcome(enum.Enum):
    SENT = "sent"
    FAILED = "failed"  # permanent: recorded on the registration
    DEFERRED = "deferred"  # this row only, retried after its backoff
    SERVER_DOWN = "server_down"  # the relay is unreachable: back off globally
    IDLE = "idle"  # nothing due


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    next_due_in: float | None = None  # IDLE: seconds until the next retry is due, None if none


@dataclass(frozen=True)
class DeliveryFailure:
    """What the organizer sees on the registration (EmailDeliveryFailed)."""

    registration_id: str
    message_id: str
    kind: str
    smtp_code: int | None
    reason: str


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    message_id: str
    kind: str
    registration_id: str
    recipient: str
    context: dict[str, Any]
    composed_at: datetime
    attempts: int
    first_failed_at: datetime | None
    now: datetime
    #: Set when the e-mail goes to the organizer (about ``registration_id``).
    organizer_id: str | None = None
    #: The registration's personal data was erased (R24): its name is not shown.
    erased: bool = False


def address_problem(recipient: str) -> str | None:
    """Why an address cannot be put in a header (validated at registration, so
    this only guards old data); None when it is fine."""
    try:
        Address(addr_spec=recipient)
    except Exception as exc:  # the email package raises several unrelated types here
        return f"{type(exc).__name__}: {exc}"
    return None if recipient.isascii() else "non-ASCII address (SMTPUTF8 is not used)"


def scrub(reason: str, recipient: str) -> str:
    """SMTP replies often quote the address: keep personal data out of events."""
    cleaned = re.sub(f"<?{re.escape(recipient)}>?", "<recipient>", reason, flags=re.IGNORECASE)
    return cleaned.strip()[:500]


class Sender:
    def __init__(
        self, ledger: Ledger, *, record_failure: Callable[[DeliveryFailure], None],
        mail_from: str | None = None, retry_base: float = 5.0, retry_max: float = 900.0,
        give_up_after: timedelta = timedelta(hours=72),
    ) -> None:
        self.ledger = ledger
        self.record_failure = record_failure
        self.mail_from = mail_from or f"no-reply@{mail_domain(ledger.settings.public_url)}"
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.give_up_after = give_up_after

    def backoff(self, attempts: int) -> float:
        """Exponential, capped, with ±20 % jitter so that retries do not align."""
        delay = min(self.retry_max, self.retry_base * 2 ** max(0, attempts - 1))
        return delay * random.uniform(0.8, 1.2)

    def compose(self, row: OutboxRow) -> EmailMessage:
        """The whole e-mail from the stored row; the token is re-derived here."""
        token = join_url = None
        if row.kind in ("confirmation", "resend"):
            token = derive_token(self.ledger.settings.secret_key, row.registration_id)
            join_url = f"{self.ledger.settings.public_url}/join/{token}"
        context = row.context
        if row.organizer_id is not None and row.erased:
            context = {**context, "name": None}  # erased since it was planned (R24): "a participant"
        rendered = render(row.kind, context, join_url=join_url, token=token)
        language = row.context["language"]
        if row.organizer_id is not None:  # to the organizer, from the platform
            sender_name, recipient_name = ORGANIZER_SENDER, row.context["organizer"]
        else:
            sender_name = TEXTS[language]["sign"].format(organizer=row.context["organizer"])
            recipient_name = row.context["name"]
        message = EmailMessage()
        message["Subject"] = rendered.subject
        message["From"] = Address(display_name=sender_name, addr_spec=self.mail_from)
        message["To"] = Address(display_name=recipient_name, addr_spec=row.recipient)
        message["Date"] = format_datetime(row.composed_at.astimezone(UTC))
        message["Message-ID"] = row.message_id
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
        message["X-Ledger-Kind"] = row.kind
        message["X-Ledger-Composed"] = row.composed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        message.set_content(rendered.text)
        message.add_alternative(rendered.html, subtype="html")
        message["Content-Language"] = language  # after set_content, which clears Content-* headers
        # A boundary derived from the Message-ID (not random) keeps a re-send byte-for-byte equal.
        message.set_boundary("=_" + hashlib.sha256(row.message_id.encode()).hexdigest()[:40])
        return message

    def send_next(self, mailer: Mailer) -> SendResult:
        with self.ledger.db.transaction() as conn:
            found = conn.execute(_PICK).fetchone()
            if found is None:
                due = conn.execute(
                    "SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now()) FROM notify_outbox"
                    " WHERE state = 'pending'").fetchone()
                seconds = None if due is None or due[0] is None else max(0.0, float(due[0]))
                return SendResult(Outcome.IDLE, seconds)
            row = OutboxRow(*found)
            problem = address_problem(row.recipient)
            if problem is not None:
                return self._fail(conn, row, PermanentFailure(f"invalid recipient address: {problem}"))
            try:
                message = self.compose(row)
            except Exception as exc:  # a template bug: keep the row, say so loudly
                log.exception("notify: cannot compose %s", row.message_id)
                return self._defer(conn, row, TransientFailure(f"compose: {exc}", server_down=False))
            try:
                mailer.send(message, envelope_from=self.mail_from, envelope_to=row.recipient)
            except TransientFailure as exc:
                return self._defer(conn, row, exc)
            except PermanentFailure as exc:
                return self._fail(conn, row, exc)
            conn.execute("UPDATE notify_outbox SET state = 'sent', sent_at = now(), attempts = attempts + 1,"
                         " last_error = NULL, smtp_code = NULL WHERE seq = %s", (row.seq,))
            return SendResult(Outcome.SENT)

    def _defer(self, conn: Any, row: OutboxRow, exc: TransientFailure) -> SendResult:
        reason = scrub(exc.reason, row.recipient)
        if exc.server_down:
            # Not this e-mail's fault: keep its place in the queue.
            conn.execute("UPDATE notify_outbox SET attempts = attempts + 1, last_error = %s, smtp_code = %s"
                         " WHERE seq = %s", (reason, exc.code, row.seq))
            log.warning("notify: mail relay unavailable (%s); backing off", reason)
            return SendResult(Outcome.SERVER_DOWN)
        if row.first_failed_at is not None and row.now - row.first_failed_at > self.give_up_after:
            return self._fail(conn, row, PermanentFailure(f"gave up after {row.attempts + 1} attempts: "
                                                          f"{reason}", exc.code))
        conn.execute(
            "UPDATE notify_outbox SET attempts = attempts + 1, last_error = %s, smtp_code = %s,"
            " first_failed_at = coalesce(first_failed_at, now()),"
            " next_attempt_at = now() + make_interval(secs => %s) WHERE seq = %s",
            (reason, exc.code, self.backoff(row.attempts + 1), row.seq),
        )
        log.info("notify: %s deferred (%s)", row.message_id, reason)
        return SendResult(Outcome.DEFERRED)

    def _fail(self, conn: Any, row: OutboxRow, exc: PermanentFailure) -> SendResult:
        """Record first, then close the row: a crash in between repeats the
        (idempotent, per Message-ID) record instead of losing it."""
        failure = DeliveryFailure(registration_id=row.registration_id, message_id=row.message_id,
                                  kind=row.kind, smtp_code=exc.code, reason=scrub(exc.reason, row.recipient))
        try:
            if row.organizer_id is None:  # the organizer's own address failing is not the participant's
                self.record_failure(failure)
        except Exception:
            log.exception("notify: could not record the failure of %s; will retry", row.message_id)
            return self._defer(conn, row, TransientFailure(exc.reason, exc.code, server_down=False))
        conn.execute("UPDATE notify_outbox SET state = 'failed', attempts = attempts + 1, last_error = %s,"
                     " smtp_code = %s WHERE seq = %s", (failure.reason, exc.code, row.seq))
        log.warning("notify: %s failed permanently (%s)", row.message_id, failure.reason)
        return SendResult(Outcome.FAILED)


def backlog(ledger: Ledger) -> dict[str, int]:
    """Counts per state — for readiness probes and tests."""
    with ledger.db.transaction() as conn:
        rows = conn.execute("SELECT state, count(*) FROM notify_outbox GROUP BY state").fetchall()
    counts = {"pending": 0, "sent": 0, "failed": 0}
    counts.update({state: int(n) for state, n in rows})
    return counts

