"""The real app on a loopback port, the projection runner beside it, and
headless Debian Chromium driven by Playwright.

One app, database and browser per test module (starting them is most of the
cost); each test makes its own organizer and event, and its own browser
context (cookies), so tests do not depend on each other's clicks.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from api.app import create_app
from entrypoints.bootstrap import Ledger, bootstrap
from ledger import api_tokens, connections
from ledger.money import Money
from projections import runner
from tests.conftest import make_settings
from tests.support.browser import LAUNCH_ARGS, ensure_chromium, require_playwright
from tests.support.postgres import TestServer

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "screenshots"
DOCS_SHOTS = ROOT / "docs" / "screenshots"
#: The screenshots docs/pages.md shows.
DOC_SHOTS = frozenset({
    "01-login", "03-events", "04-who-paid", "05-who-paid-after-actions", "06-reject-error",
    "07-reschedule-confirm", "08-cancel-confirm", "09-cancelled", "10-fee-report", "11-event-log",
    "12-registration-history", "13-providers", "14-phone-who-paid",
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


#: The restricted key the provider page test pastes; the contract server knows it.
BROWSER_STRIPE_KEY = "rk_test_51AbCdEfGhIjKlMnOp4242"


@pytest.fixture(scope="module")
def chromium_path(request: pytest.FixtureRequest) -> str:
    return ensure_chromium(request.config)


@pytest.fixture(scope="module")
def live(pg_server: TestServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    from tests.contracts.stripe_contract import FULL_ACCESS, StripeContractServer

    stripe = StripeContractServer()  # connecting Stripe checks the key against it
    stripe.keys[BROWSER_STRIPE_KEY] = FULL_ACCESS
    stripe.start()
    settings = make_settings(tmp_path_factory.mktemp("browser"), LEDGER_STRIPE_API_BASE=stripe.base_url)
    ledger = bootstrap(settings, url=pg_server.new_database())
    app = create_app(ledger)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    serving = threading.Thread(target=server.serve_forever, name="pages-http", daemon=True)
    serving.start()
    stop = threading.Event()
    projecting = threading.Thread(target=runner.build(ledger).run, args=(stop,), name="projections", daemon=True)
    projecting.start()
    yield LiveApp(f"http://127.0.0.1:{server.server_port}", ledger)
    stop.set()
    server.shutdown()
    projecting.join(10)
    serving.join(10)
    ledger.close()
    stripe.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    sync_api = require_playwright(request.config)
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path, args=list(LAUNCH_ARGS))
        yield launched
        launched.close()


def _context(browser: Any, **options: Any) -> Any:
    context = browser.new_context(accept_downloads=True, locale="en-GB", **options)
    context.set_default_timeout(10_000)
    return context


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = _context(browser, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def phone(browser: Any) -> Iterator[Any]:
    context = _context(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                       is_mobile=True, has_touch=True)
    yield context.new_page()
    context.close()


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


def sign_in(page: Any, live: LiveApp, token: str) -> None:
    page.goto(f"{live.url}/app/login")
    page.get_by_label("Access token").fill(token)
    follow(page, page.get_by_role("button", name="Sign in"))
    assert "Signed in as" in page.locator(".flashes").inner_text()


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
        sessions=[starts_at or datetime(2026, 12, 1, 17, 0, tzinfo=UTC)],
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
