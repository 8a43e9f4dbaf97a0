"""Shared fixtures: a real PostgreSQL server per session, wired ledgers, the
Flask app.  Provider contract servers, the broker and SMTP come from plugins."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from entrypoints.bootstrap import bootstrap
from ledger.container import Ledger
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

pytest_plugins = ["tests.contracts.fixtures", "tests.support.kafka", "tests.support.smtp"]


@pytest.fixture(scope="session")
def pg_server() -> TestServer:
    return TestServer()


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
