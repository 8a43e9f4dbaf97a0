"""Versioned schema migrations: ``ledger migrate`` applies them, every other
process only checks that the database is at this code's version.

Why: the first release ran all of its DDL on every process start.  Triggers on
``ledger_events`` took an ACCESS EXCLUSIVE lock while the notify planner held a
transaction open and waited for an event-store read queued behind that lock —
a cycle through the application that PostgreSQL could not see, so about one
restart in four never became ready.  Now DDL runs once per database, by one
process, before anything else starts (``ledger run``), or as its own rollout
step (``ledger migrate``, see docs/deployment.md).

**The files.**  ``NNNN_what.sql`` in this folder, numbered from 1 without gaps,
applied in order.  Each runs in *one* transaction together with the row that
records it in ``ledger_schema_migrations``: PostgreSQL's DDL is transactional,
so a migration killed half-way leaves nothing behind and is simply run again.
A released migration is never edited — its SHA-256 is recorded, and a
database whose recorded checksum differs is refused; write a new migration.
Write them for a database that is in use (expand first, contract in a later
release): older processes keep running against a newer schema during a rollout,
so a database *ahead* of the code is accepted, one *behind* is not.

**Locks.**  One migrator at a time: a session advisory lock, which dies with
its connection, so a migrator killed with ``kill -9`` never leaves a stale lock
(the first release's key, so a first-release process creating its schema and a
migrator never interleave).  A migration waits at most
:data:`MIGRATION_LOCK_TIMEOUT` for each table lock — while it waits in the lock
queue it blocks every reader and writer of that table — then rolls back, backs
off and tries again, at most :data:`MIGRATION_ATTEMPTS` times.

**Why not a library.**  yoyo-migrations (the one that speaks psycopg 3) keeps
its lock as a row in ``yoyo_lock``: a migrator killed with ``kill -9`` leaves it
and every later start fails with "run yoyo break-lock" — the very wedge this
module removes; it also runs a migration on a second connection and records it
in a separate transaction afterwards (a crash in between runs it twice), and
resolves the host name for its log table on every migration.  Alembic needs
SQLAlchemy for what are plain SQL files and brings no lock of its own.  What a
runner must do here is small because PostgreSQL does the hard parts.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import psycopg

from ledger.database import connect

log = logging.getLogger(__name__)

#: Session advisory lock held while migrating (the first release's schema lock).
MIGRATION_LOCK_KEY = 0x1ED6E7
#: Seconds a migrator waits for another one to finish before giving up.
MIGRATOR_WAIT = 120
#: Seconds one migration attempt waits for any one table lock (``lock_timeout``).
MIGRATION_LOCK_TIMEOUT = 5
#: Attempts per migration when a table lock is not granted in time.
MIGRATION_ATTEMPTS = 6
#: Seconds between attempts: doubles from this, at most :data:`BACKOFF_MAX`.
BACKOFF_INITIAL = 0.5
BACKOFF_MAX = 8.0

VERSION_TABLE = "ledger_schema_migrations"
_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_CREATE_VERSION_TABLE = b"""
CREATE TABLE IF NOT EXISTS ledger_schema_migrations (
  version    integer PRIMARY KEY CHECK (version > 0),
  name       text NOT NULL,
  checksum   text NOT NULL,      -- SHA-256 of the file as applied
  applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class SchemaNotReady(RuntimeError):
    """This database cannot be used by this code as it is."""


class SchemaBehind(SchemaNotReady):
    """Migrations this code needs are not applied: run ``ledger migrate``."""


class SchemaMismatch(SchemaNotReady):
    """A migration was applied with other contents than this code's file."""


class MigrationFailed(RuntimeError):
    """A migration could not be applied (it was rolled back as a whole)."""


@cache
def available() -> tuple[Migration, ...]:
    """This code's migrations, in order.  Anything else in the folder but
    Python files is an error, and so is a gap: a misnamed file must not be
    skipped silently."""
    found: dict[int, Migration] = {}
    for entry in resources.files(__name__).iterdir():
        name = entry.name
        if name.startswith(("__", ".")) or name.endswith(".py"):
            continue
        match = _FILE.match(name)
        if match is None:
            raise RuntimeError(f"ledger/migrations/{name}: not a migration (expected NNNN_what.sql)")
        version = int(match.group(1))
        if version in found:
            raise RuntimeError(f"two migrations numbered {version}: {found[version].name} and {name}")
        found[version] = Migration(version, name, entry.read_text(encoding="utf-8"))
    versions = sorted(found)
    if versions != list(range(1, len(versions) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {versions}")
    return tuple(found[v] for v in versions)


def target_version() -> int:
    """The schema version this code needs."""
    return len(available())


def applied(conn: psycopg.Connection[Any]) -> dict[int, str]:
    """version → checksum of every migration applied to this database."""
    row = conn.execute("SELECT to_regclass(%s)", (VERSION_TABLE,)).fetchone()
    if row is None or row[0] is None:
        return {}
    rows = conn.execute("SELECT version, checksum FROM ledger_schema_migrations").fetchall()
    return {int(version): str(checksum) for version, checksum in rows}


def _verify(done: dict[int, str], migrations: Sequence[Migration]) -> None:
    for migration in migrations:
        if migration.version in done and done[migration.version] != migration.checksum:
            raise SchemaMismatch(
                f"migration {migration.name} differs from the one applied to this database: "
                "a released migration is never edited, add a new one"
            )


def check(url: str) -> int:
    """Return the database's version if this code can use it; raise
    :class:`SchemaBehind` (with what to do) or :class:`SchemaMismatch` if not.
    Reads one small table: no DDL, no lock that anything else waits for."""
    migrations = available()
    with connect(url, autocommit=True) as conn:
        done = applied(conn)
    _verify(done, migrations)
    missing = [m.name for m in migrations if m.version not in done]
    if missing:
        raise SchemaBehind(
            f"the database is at schema version {max(done, default=0)}, this code needs "
            f"{target_version()} (missing {', '.join(missing)}): run `ledger migrate`"
        )
    return max(done)


def migrate(url: str) -> list[int]:
    """Apply the migrations this database lacks, one transaction each; return
    the versions applied (empty when it was up to date).  Safe to run from any
    number of processes at once, and to kill at any line."""
    migrations = available()
    with connect(url, autocommit=True) as conn:
        _lock(conn)
        try:
            conn.execute(f"SET lock_timeout = '{MIGRATION_LOCK_TIMEOUT}s'")
            conn.execute(_CREATE_VERSION_TABLE)
            done = applied(conn)
            _verify(done, migrations)
            ran = []
            for migration in migrations:
                if migration.version not in done:
                    _apply(conn, migration)
                    ran.append(migration.version)
            ahead = sorted(set(done) - {m.version for m in migrations})
            if ahead:
                log.warning("the database has migrations this code does not know (%s): newer code migrated it",
                            ", ".join(map(str, ahead)))
            return ran
        finally:
            with contextlib.suppress(psycopg.Error):  # a broken connection took the lock with it
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))


def _lock(conn: psycopg.Connection[Any]) -> None:
    conn.execute(f"SET lock_timeout = '{MIGRATOR_WAIT}s'")
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
    except psycopg.errors.LockNotAvailable as exc:
        raise MigrationFailed(
            f"another migrator has held the migration lock for more than {MIGRATOR_WAIT} s; "
            "see pg_stat_activity for who holds advisory lock "
            f"{MIGRATION_LOCK_KEY}"
        ) from exc


def _apply(conn: psycopg.Connection[Any], migration: Migration) -> None:
    delay = BACKOFF_INITIAL
    for attempt in range(1, MIGRATION_ATTEMPTS + 1):
        started = time.monotonic()
        try:
            with conn.transaction():
                # No parameters: psycopg sends the file as one simple query, so
                # it may hold many statements and dollar-quoted bodies.
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO ledger_schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        except psycopg.errors.LockNotAvailable as exc:
            if attempt == MIGRATION_ATTEMPTS:
                raise MigrationFailed(
                    f"{migration.name}: a table it changes stayed locked by other sessions through "
                    f"{MIGRATION_ATTEMPTS} attempts of {MIGRATION_LOCK_TIMEOUT} s ({exc}); "
                    "nothing was changed, try again when the long transactions are gone"
                ) from exc
            log.warning("%s: lock not granted within %s s (attempt %d of %d); retrying in %.1f s",
                        migration.name, MIGRATION_LOCK_TIMEOUT, attempt, MIGRATION_ATTEMPTS, delay)
            time.sleep(delay)
            delay = min(BACKOFF_MAX, delay * 2)
            continue
        except psycopg.Error as exc:
            raise MigrationFailed(f"{migration.name} failed and was rolled back: {exc}") from exc
        log.info("applied migration %s in %.2f s", migration.name, time.monotonic() - started)
        return
