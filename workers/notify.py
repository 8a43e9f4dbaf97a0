"""The notify worker (``ledger worker notify``): participant e-mails, R11–R15,
and the organizer's about disputes, reversals and failed refunds (issue 18).

Two steps, two threads, one process:

* **plan** (this thread) — follows the notification log with
  ``ledger.log_follower`` (woken by the event store's NOTIFY) and, for each
  fact, records in one transaction the e-mails it implies, the access tokens it
  issues or revokes and the new position (workers/notify_planner.py).  Exactly
  one planned e-mail per fact, across any crash.
* **send** (a second thread) — delivers planned e-mails through SMTP, or into
  ``.eml`` files when ``LEDGER_SMTP_URL`` is unset, marking each ``sent`` in the
  transaction that holds its row lock (workers/notify_sender.py).  A crash
  between the server's ``250`` and that commit means one re-send with the same
  Message-ID — never zero.  The planner wakes the sender, so a payment's
  confirmation leaves within milliseconds.

Transient SMTP failures are retried with backoff (per row for a recipient's
4xx, globally while the relay is down) without blocking other participants'
mail; a permanent 5xx is recorded on the registration
(:func:`record_delivery_failure`) and the worker moves on.  ``run`` returns
within about a second of ``stop`` being set.  Several notify processes may run
at once: the planner serialises on its position row and senders skip rows
another sender holds.  See docs/emails.md.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from ledger.log_follower import LogBatch, LogConsumer, LogFollower
from workers.mailer import Mailer, OutboxMailer, SmtpMailer
from workers.notify_planner import Planner
from workers.notify_sender import DeliveryFailure, Outcome, Sender

if TYPE_CHECKING:
    from ledger.container import Ledger

log = logging.getLogger(__name__)


def record_delivery_failure(ledger: Ledger, failure: DeliveryFailure) -> None:
    """Make a permanent delivery failure visible to the organizer: an
    ``EmailDeliveryFailed`` event on the registration, which
    ``GET /v1/registrations/{id}`` shows.

    The one seam between this worker and the domain.  The service command is
    idempotent per ``message_id`` (a crash after recording and before the
    outbox row is closed repeats the call).
    """
    from ledger.actor import acting_as

    with acting_as("worker:notify"):
        ledger.service.record_email_delivery_failure(
            failure.registration_id, message_id=failure.message_id, kind=failure.kind,
            smtp_code=failure.smtp_code, reason=failure.reason,
        )


def default_mailer(ledger: Ledger) -> Mailer:
    """SMTP when ``LEDGER_SMTP_URL`` is set, else ``.eml`` files in the outbox folder."""
    if ledger.settings.smtp_url:
        return SmtpMailer(ledger.settings.smtp_url, timeout=20.0)
    return OutboxMailer(ledger.settings.outbox_dir)


#: Notifications read per batch; each is still planned in a transaction of its own.
PLAN_BATCH_SIZE = 500


class NotifyWorker(LogConsumer):
    """The worker; its ``LogConsumer`` side is the planner's, called by the
    follower on the planning thread."""

    name = "notify"

    def __init__(
        self, ledger: Ledger, *, mailer_factory: Callable[[], Mailer] | None = None,
        retry_base: float = 5.0, retry_max: float = 900.0, give_up_after: timedelta = timedelta(hours=72),
        idle_poll: float = 5.0,
    ) -> None:
        self.ledger = ledger
        self.mailer_factory = mailer_factory or (lambda: default_mailer(ledger))
        self.planner = Planner(ledger)
        self.sender = Sender(ledger, record_failure=lambda f: record_delivery_failure(ledger, f),
                             retry_base=retry_base, retry_max=retry_max, give_up_after=give_up_after)
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.idle_poll = idle_poll
        self.follower: LogFollower | None = None  #: while ``run`` follows: its health
        self._wake = threading.Event()
        self._stop = threading.Event()

    def run(self, stop: threading.Event) -> None:
        self._stop = stop
        self.follower = LogFollower(
            self.ledger.store.recorder, self.ledger.database_url, self, name="notify",
            batch_size=PLAN_BATCH_SIZE, backoff_initial=self.retry_base, backoff_max=self.retry_max,
        )
        halt = threading.Event()
        sender = threading.Thread(target=self._send_loop, args=(halt,), name="notify-send", daemon=True)
        sender.start()
        try:
            self.follower.run(stop)  # plan, on this thread
        finally:
            halt.set()
            self._wake.set()
            sender.join(timeout=30)

    # --- plan (LogConsumer) --------------------------------------------------------------

    def resume(self) -> int:
        self._wake.set()  # send what earlier runs planned but did not send
        return self.planner.position()

    def consume(self, batch: LogBatch) -> int:
        """Plan each notification in a transaction of its own (which moves the
        planner's position); stop between two of them if asked, so ``run``
        returns within about a second even in a long batch."""
        position = batch.after
        for notification in batch.notifications:
            if self._stop.is_set():
                return position
            if self.planner.handle(notification):
                self._wake.set()
            position = notification.id
        return batch.reached

    # --- send ----------------------------------------------------------------------------

    def _send_loop(self, halt: threading.Event) -> None:
        mailer = self.mailer_factory()
        outage = 0
        try:
            while not halt.is_set():
                self._wake.clear()
                try:
                    result = self.sender.send_next(mailer)
                except Exception:  # database trouble: the row stays pending
                    log.exception("notify: sending failed; retrying")
                    halt.wait(min(self.retry_max, self.retry_base))
                    continue
                if result.outcome is Outcome.SERVER_DOWN:
                    outage += 1
                    halt.wait(self.sender.backoff(outage))  # new mail must not cut this short
                    continue
                outage = 0
                if result.outcome is Outcome.IDLE:
                    mailer.close()  # do not keep an idle SMTP connection for the server to drop
                    timeout = self.idle_poll if result.next_due_in is None else min(
                        self.idle_poll, result.next_due_in + 0.01)
                    self._wake.wait(timeout)
        finally:
            mailer.close()


def build(ledger: Ledger) -> NotifyWorker:
    """``ledger worker notify`` (entrypoints/worker_registry.py)."""
    return NotifyWorker(ledger)
