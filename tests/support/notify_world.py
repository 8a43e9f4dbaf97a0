"""Driving the ledger through LedgerService commands for the notify tests, and
running the notify worker in a thread (tests/integration/notify/)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.access_tokens import derive_token
from ledger.container import Ledger
from ledger.money import Money
from ledger.scope import ANYONE
from workers.notify import NotifyWorker


@dataclass
class World:
    """Short-hands for the commands the e-mails react to."""

    ledger: Ledger

    def organizer(self, *, country: str = "US", name: str = "Acme Webinars") -> str:
        service = self.ledger.service
        org = service.register_organizer(name=name, country=country, plan_size=50)
        service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
        return str(org.id)

    def event(self, organizer_id: str, *, title: str = "Pricing 101", price: str = "49.00",
              currency: str = "USD", timezone: str = "America/New_York",
              starts: tuple[str, ...] = ("2037-12-01T23:00:00+00:00",), permanent: bool = False) -> str:
        paid_event = self.ledger.service.create_event(
            organizer_id=organizer_id, title=title, description="", timezone=timezone,
            sessions=[datetime.fromisoformat(s) for s in starts], permanent=permanent,
            price=Money.parse(price, currency), provider="manual",
        )
        return str(paid_event.id)

    def register(self, event_id: str, email: str, *, name: str = "Ann Example",
                 language: str | None = None) -> str:
        registration = self.ledger.service.register_participant(
            event_id, name=name, email=email, fields={}, language=language)
        return str(registration.id)

    def pay(self, registration_id: str, reference: str | None = None) -> None:
        service = self.ledger.service
        registration = service.registration(registration_id)
        service.record_payment(registration_id, amount=registration.price, provider="manual",
                               reference=reference or f"bank-{registration_id[:8]}")

    def confirm(self, registration_id: str) -> None:
        self.ledger.service.confirm(registration_id, scope=ANYONE)

    def reject(self, registration_id: str, reason: str = "Not eligible") -> None:
        self.ledger.service.reject(registration_id, reason=reason, scope=ANYONE)

    def resend(self, registration_id: str) -> None:
        self.ledger.service.request_resend(registration_id, scope=ANYONE)

    def cancel(self, event_id: str, reason: str = "Speaker is ill") -> None:
        self.ledger.service.cancel_event(event_id, reason=reason, scope=ANYONE)

    def reschedule(self, event_id: str, starts_at: str, session_id: str | None = None) -> None:
        self.ledger.service.reschedule(event_id, starts_at=datetime.fromisoformat(starts_at),
                                       session_id=session_id, scope=ANYONE)

    def token(self, registration_id: str) -> str:
        return derive_token(self.ledger.settings.secret_key, registration_id)

    def outbox(self) -> list[dict[str, Any]]:
        with self.ledger.db.transaction() as conn:
            cursor = conn.execute("SELECT * FROM notify_outbox ORDER BY seq")
            names = [c.name for c in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def position(self) -> int:
        with self.ledger.db.transaction() as conn:
            row = conn.execute("SELECT position FROM notify_position WHERE worker = 'notify'").fetchone()
        return int(row[0]) if row else 0


@contextmanager
def running(ledger: Ledger, **options: Any) -> Iterator[NotifyWorker]:
    """The worker in a thread, with test-sized backoff; on exit it must stop
    within about a second of ``stop`` (workers/base.py's contract)."""
    settings: dict[str, Any] = {"retry_base": 0.1, "retry_max": 0.4, "idle_poll": 0.5}
    settings.update(options)
    worker = NotifyWorker(ledger, **settings)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="notify-test")
    thread.start()
    try:
        yield worker
    finally:
        stop.set()
        started = time.monotonic()
        thread.join(10)
        assert not thread.is_alive(), "the notify worker did not stop"
        assert time.monotonic() - started < 2.0, "the notify worker took too long to stop"
