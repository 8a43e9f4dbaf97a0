"""The real app on a loopback port, the projection runner beside it, and
headless Debian Chromium driven by Playwright.

One app, database and browser per test module (starting them is most of the
cost); each test makes its own organizer and event, and its own browser
context (cookies), so tests do not depend on each other's clicks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from werkzeug.serving import make_server

from api.app import create_app
from entrypoints.bootstrap import bootstrap
from projections import runner
from tests.support.browser import LAUNCH_ARGS, ensure_chromium, require_playwright
from tests.support.pages import LiveApp
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

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
