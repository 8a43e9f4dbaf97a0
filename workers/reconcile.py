"""The reconciler: asks providers about checkouts they never told us about.

Webhooks get lost (misconfigured endpoint, outage on our side longer than the
provider's retries, a participant who never comes back from PayPal to trigger
the capture).  This worker polls every open checkout in
``provider_checkouts`` with ``gateway.fetch_status`` and feeds what it learns
to :class:`~ledger.payment_intake.PaymentIntake`, exactly like a webhook --
so a fact seen both ways books once.  An approved PayPal order found here is
captured here.

Restart safety: claiming a batch pushes each checkout's next poll back in the
same statement (exponential backoff, ``SKIP LOCKED``), so a worker killed at
any line polls that checkout again later and never blocks another worker; the
intake's fact table makes a repeated poll harmless.  It also retries facts
left unprocessed (a refund seen before its payment, a crash mid-apply).

``run`` checks ``stop`` between provider calls; one call blocks at most the
provider timeout (``LEDGER_PROVIDER_TIMEOUT_SECONDS``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from ledger.errors import LedgerError, NotFound, ProviderUnavailable
from ledger.payment_intake import PaymentIntake
from ledger.provider_access import ProviderAccess
from ledger.providers import inbox

if TYPE_CHECKING:
    from ledger.container import Ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pass:
    """What one pass did (for tests and logs)."""

    polled: int
    applied: int
    retried: int


class Reconciler:
    name = "reconcile"

    def __init__(
        self,
        *,
        access: ProviderAccess,
        intake: PaymentIntake,
        idle_seconds: float = 5.0,
        batch: int = 50,
        first_delay: timedelta = timedelta(minutes=2),
        min_interval: timedelta = timedelta(minutes=1),
        max_interval: timedelta = timedelta(hours=1),
        give_up_after: timedelta = timedelta(days=3),
        retry_min_age: timedelta = timedelta(minutes=1),
    ) -> None:
        """``first_delay`` leaves time for the webhook, which is the normal
        path; polls then back off from ``min_interval`` to ``max_interval``.
        ``give_up_after`` outlives every provider's checkout validity
        (Stripe: 24 h at most)."""
        self.access = access
        self.intake = intake
        self.idle_seconds = idle_seconds
        self.batch = batch
        self.first_delay = first_delay
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.give_up_after = give_up_after
        self.retry_min_age = retry_min_age

    def run(self, stop: threading.Event) -> None:
        from ledger.actor import current_actor

        current_actor.set("worker:reconcile")  # recorded with every event it causes
        while not stop.is_set():
            try:
                done = self.run_once(stop)
            except Exception:  # keep polling; the supervisor sees the log
                log.exception("reconcile pass failed")
                done = Pass(0, 0, 0)
            if done.polled < self.batch:
                stop.wait(self.idle_seconds)

    def run_once(self, stop: threading.Event | None = None) -> Pass:
        db = self.access.db
        inbox.abandon_stale_checkouts(db, older_than=self.give_up_after)
        due = inbox.claim_due_checkouts(
            db,
            limit=self.batch,
            first_delay=self.first_delay,
            min_interval=self.min_interval,
            max_interval=self.max_interval,
        )
        polled = applied = 0
        applied += self._close_lapsed(stop)
        for row in due:
            if stop is not None and stop.is_set():
                break
            polled += 1
            applied += self._poll(row)
        retried = 0
        if stop is None or not stop.is_set():
            retried = self.intake.retry_unprocessed(limit=self.batch, min_age=self.retry_min_age)
        return Pass(polled, applied, retried)

    def _close_lapsed(self, stop: threading.Event | None) -> int:
        """R20: a checkout whose seat hold ended is made unpayable at the
        provider (Stripe expire, PayU cancel, PayPal never captured) and its
        registration's checkout recorded as expired.  An outage leaves it for
        the next pass."""
        closed = 0
        for row in inbox.lapsed_checkouts(self.access.db, now=self.access.service.clock(), limit=self.batch):
            if stop is not None and stop.is_set():
                break
            outcome = self._close(row)
            if outcome is None:  # nothing to end (paid meanwhile): stop listing it
                inbox.settle_checkout(self.access.db, row.registration_id, "lapsed", reference=row.reference)
            closed += outcome not in (None, "")
        return closed

    def _close(self, row: inbox.CheckoutRow) -> str | None:
        """The outcome of closing; ``None`` when nothing was to close, ``""``
        when the provider could not be asked (tried again later)."""
        try:
            return self.intake.close_checkout(row.registration_id)
        except LedgerError as exc:
            log.info("closing %s %s: %s", row.provider, row.reference, exc.code)
        except Exception:  # one bad checkout must not starve the others
            log.exception("closing %s %s failed; tried again later", row.provider, row.reference)
        return ""

    def _poll(self, row: inbox.CheckoutRow) -> int:
        db = self.access.db
        try:
            connection = self.access.connection(row.connection_id)
        except NotFound:
            inbox.settle_checkout(db, row.registration_id, "unknown_connection")
            return 0
        if self._close(row):  # closed early (rejected, event cancelled): R20
            return 1
        if not inbox.checkout_is_open(db, row.registration_id):
            return 0
        try:
            found = self.access.gateway(row.provider).fetch_status(
                self.access.credentials(connection.id), row.reference
            )
            if found is None:
                return 0  # still open at the provider
            outcome = self.intake.handle(connection, found, source="reconcile")
        except ProviderUnavailable as exc:
            log.info("reconcile %s %s: provider unavailable (%s)", row.provider, row.reference, exc.detail)
            return 0
        except LedgerError as exc:  # e.g. revoked key: keep polling with backoff
            log.warning("reconcile %s %s: %s", row.provider, row.reference, exc.code)
            return 0
        except Exception:  # one bad checkout must not starve the others
            log.exception("reconcile %s %s failed; polled again later", row.provider, row.reference)
            return 0
        self._settle_if_done(row)
        return 0 if outcome.startswith("duplicate") else 1

    def _settle_if_done(self, row: inbox.CheckoutRow) -> None:
        """Stop polling once the registration no longer waits for money,
        whichever route brought the news."""
        try:
            registration = self.access.service.registration(row.registration_id)
        except NotFound:
            inbox.settle_checkout(self.access.db, row.registration_id, "unknown_registration")
            return
        if registration.status != "awaiting_payment":
            inbox.settle_checkout(self.access.db, row.registration_id, registration.status)


def build(ledger: Ledger) -> Reconciler:
    """``ledger worker reconcile``."""
    return Reconciler(access=ledger.providers, intake=ledger.intake)
