"""Shared fixtures: a real PostgreSQL server per session, wired ledgers, the
Flask app.  Provider contract servers, the broker and SMTP come from plugins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoints.bootstrap import Ledger, bootstrap
from ledger.config import Settings
from tests.support.postgres import TestServer

pytest_plugins: list[str] = []
for _plugin in ("tests.contracts.fixtures", "tests.support.kafka", "tests.support.smtp"):
    if (Path(__file__).parent.parent / (_plugin.replace(".", "/") + ".py")).exists():
        pytest_plugins.append(_plugin)


@pytest.fixture(scope="session")
def pg_server() -> TestServer:
    return TestServer()


def make_settings(tmp_path: Path, **overrides: str) -> Settings:
    env = {
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_SECRET_KEY": "11" * 32,
        "LEDGER_PUBLIC_URL": "http://ledger.test",
        "LEDGER_SEAT_HOLD_SECONDS": "1800",
        # No test may ever reach a real provider: unroutable unless a test points
        # these at its contract server.
        "LEDGER_STRIPE_API_BASE": "http://127.0.0.1:9",
        "LEDGER_PAYU_API_BASE": "http://127.0.0.1:9",
        "LEDGER_PAYPAL_API_BASE": "http://127.0.0.1:9",
    }
    env.update(overrides)
    return Settings.from_env(env)


@pytest.fixture(scope="session")
def shared_db_url(pg_server: TestServer) -> str:
    return pg_server.new_database("shared")


@pytest.fixture(scope="session")
def shared_ledger(shared_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """One ledger for tests that only touch their own aggregates."""
    ledger = bootstrap(make_settings(tmp_path_factory.mktemp("shared")), url=shared_db_url, pool_size=20)
    yield ledger
    ledger.close()


@pytest.fixture
def fresh_ledger(pg_server: TestServer, tmp_path: Path) -> Iterator[Ledger]:
    """A ledger on an empty database of its own (global order starts at 1)."""
    ledger = bootstrap(make_settings(tmp_path), url=pg_server.new_database(), pool_size=20)
    yield ledger
    ledger.close()


os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")
