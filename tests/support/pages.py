"""Driving the server-rendered pages (tests/browser/): the live app on a
loopback port, participants seeded through the service, screenshots, and the
clicks every page test makes."""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger import api_tokens, connections
from ledger.container import Ledger
from ledger.money import Money
from projections import runner

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
#: The screenshots docs/pages.md shows.
DOC_SHOTS = frozenset({
    "01-login", "03-events", "04-who-paid", "05-who-paid-after-actions", "06-reject-error",
    "07-reschedule-confirm", "08-cancel-confirm", "09-cancelled", "10-fee-report", "11-event-log",
    "12-registration-history", "13-providers", "14-phone-who-paid", "17-create-event-error", "18-event-created",
    "19-record-payment", "20-record-partial-refund", "21-who-paid-after-refund", "22-polish-who-paid",
    "23-polish-create-event-error",
})


@dataclass
class LiveApp:
    url: str
    ledger: Ledger

    def wait_for_views(self, timeout: float = 15.0) -> None:
        """Until the projection runner has applied every stored event."""
        deadline = time.monotonic() + timeout
        while runner.lag(self.ledger) > 0:
            if time.monotonic() > deadline:
                raise AssertionError("the projection runner did not catch up")
            time.sleep(0.02)


@dataclass
class Seeded:
    organizer_id: str
    token: str
    event_id: str
    people: dict[str, str] = field(default_factory=dict)  # name -> registration id


def shot(page: Any, name: str) -> Path:
    """A full-page screenshot into test-artifacts/screenshots/ (CI artefacts).
    With LEDGER_UPDATE_DOCS_SCREENSHOTS=1 the representative ones are also
    copied to docs/screenshots/ (so a normal run never touches docs/)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if name in DOC_SHOTS and os.environ.get("LEDGER_UPDATE_DOCS_SCREENSHOTS") == "1":
        DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_SHOTS / path.name)
    return path


def follow(page: Any, action: Any) -> None:
    """Click ``action`` (a locator, or a callable that acts) and wait until the
    page it leads to has loaded — so the next read never sees the old page."""
    with page.expect_navigation():
        if callable(action):
            action()
        else:
            action.click()


def sign_in(page: Any, live: LiveApp, token: str, *, language: str | None = "en") -> None:
    """Sign in; ``language`` first picks the pages' language with the switch
    (the seeded organizers are Polish, whose pages are otherwise in Polish).
    ``None`` leaves the choice to the organizer's country and the browser."""
    if language is not None:
        page.goto(f"{live.url}/app/language/{language}?next=/app/login")
    else:
        page.goto(f"{live.url}/app/login")
    page.locator("#token").fill(token)  # "Access token" / "Token dostępu"
    follow(page, page.locator("main form button[type=submit]"))
    assert page.locator(".flashes").count() == 1


def seed(
    live: LiveApp, *, title: str, people: dict[str, bool], country: str = "PL", currency: str = "PLN",
    price: str = "49.00", timezone: str = "Europe/Warsaw", starts_at: datetime | None = None,
    organizer_name: str = "Akademia Webinarów",
) -> Seeded:
    """An organizer with a manual connection, one event, and participants
    (``name: paid?``), created through the same LedgerService as the pages."""
    service = live.ledger.service
    organizer = service.register_organizer(name=organizer_name, country=country, plan_size=50)
    org = str(organizer.id)
    service.connect_provider(
        org, provider="manual", masked={},
        store_secrets=lambda cid: connections.store_secrets(
            live.ledger.db, live.ledger.secret_box, connection_id=cid, organizer_id=org, creds={}
        ),
    )
    event = service.create_event(
        organizer_id=org, title=title, description="", timezone=timezone, permanent=False,
        sessions=[starts_at or datetime(2037, 12, 1, 17, 0, tzinfo=UTC)],
        price=Money.parse(price, currency), provider="manual",
    )
    seeded = Seeded(org, api_tokens.create_token(live.ledger.db, role="organizer", organizer_id=org), str(event.id))
    for n, (name, paid) in enumerate(people.items()):
        email = name.split()[0].lower() + "@example.com"
        registration = service.register_participant(str(event.id), name=name, email=email, fields={})
        if paid:
            service.record_payment(str(registration.id), amount=Money.parse(price, currency), provider="manual",
                                   reference=f"bank-{event.id.hex[:6]}-{n}")
        seeded.people[name] = str(registration.id)
    live.wait_for_views()
    return seeded
