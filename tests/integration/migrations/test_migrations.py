"""Versioned migrations (ledger/migrations): applied once, under a lock, by
``ledger migrate`` / ``ledger run``; every other start only checks the version."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from entrypoints.bootstrap import bootstrap
from ledger import migrations
from ledger.application import LedgerStore
from ledger.database import eventsourcing_env
from ledger.domain.organizer import Organizer
from projections import books_query
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

ROOT = Path(__file__).resolve().parents[3]
FIRST_RELEASE_SCHEMA = Path(__file__).with_name("first_release_schema.sql")


def schema_of(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a migration can create, as comparable rows (not the data)."""
    user = "NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"
    queries = {
        "columns": "SELECT table_schema, table_name, column_name, data_type, is_nullable, column_default"
                   f" FROM information_schema.columns WHERE table_schema {user}",
        "indexes": f"SELECT schemaname, tablename, indexname, indexdef FROM pg_indexes WHERE schemaname {user}",
        "constraints": "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(c.oid) FROM pg_constraint c"
                       f" JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname {user}",
        "triggers": "SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger"
                    " WHERE NOT tgisinternal",
        "functions": "SELECT n.nspname, p.proname, pg_get_functiondef(p.oid) FROM pg_proc p"
                     f" JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname {user}",
        "views": f"SELECT schemaname, viewname, definition FROM pg_views WHERE schemaname {user}",
        "types": "SELECT n.nspname, t.typname FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid"
                 f" JOIN pg_namespace n ON n.oid = t.typnamespace WHERE c.relkind = 'c' AND n.nspname {user}",
        "storage": "SELECT c.relname, c.reloptions::text FROM pg_class c JOIN pg_namespace n"
                   f" ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname {user}",
    }
    with psycopg.connect(url) as conn:
        return {name: sorted(conn.execute(query).fetchall()) for name, query in queries.items()}


def first_release_database(pg_server: TestServer) -> tuple[str, str]:
    """A database as the first release left it -- the event store's tables made
    by the library itself, then the first release's DDL, then some data -- and
    the id of the organizer in it."""
    url = pg_server.new_database("first", migrated=False)
    env = {**eventsourcing_env(url, pool_size=2), "PERSISTENCE_MODULE": "eventsourcing.postgres",
           "CREATE_TABLE": "true"}
    store = LedgerStore(env=env)
    with psycopg.connect(url) as conn:
        conn.execute(FIRST_RELEASE_SCHEMA.read_bytes())
        conn.execute("INSERT INTO api_tokens (token_hash, role) VALUES ('h1', 'admin')")
    organizer = Organizer.register(id=uuid4(), name="Old Org", country="PL", plan_size=10)
    store.save(organizer)
    store.close()
    return url, str(organizer.id)


def test_a_database_behind_is_refused_with_what_to_do(pg_server: TestServer, tmp_path: Path) -> None:
    url = pg_server.new_database("behind", migrated=False)
    with pytest.raises(migrations.SchemaBehind, match=r"version 0, .* run `ledger migrate`"):
        bootstrap(make_settings(tmp_path), url=url, pool_size=1)
    assert migrations.migrate(url) == list(range(1, migrations.target_version() + 1))
    assert migrations.migrate(url) == []  # once per database
    ledger = bootstrap(make_settings(tmp_path), url=url, pool_size=1)
    try:
        assert ledger.service.register_organizer(name="New", country="PL", plan_size=5).plan_size == 5
    finally:
        ledger.close()


def test_migration_1_applies_to_a_first_release_database_and_keeps_its_data(
    pg_server: TestServer, tmp_path: Path
) -> None:
    old, organizer_id = first_release_database(pg_server)
    with pytest.raises(migrations.SchemaBehind):
        migrations.check(old)
    assert migrations.migrate(old) == list(range(1, migrations.target_version() + 1))
    assert schema_of(old) == schema_of(pg_server.new_database("new"))
    ledger = bootstrap(make_settings(tmp_path), url=old, pool_size=1)
    try:
        with ledger.db.transaction() as conn:
            assert conn.execute("SELECT role FROM api_tokens WHERE token_hash = 'h1'").fetchone() == ("admin",)
            assert conn.execute("SELECT generation, state FROM projections.generations").fetchall() == [(1, "active")]
        assert ledger.service.organizer(organizer_id).name == "Old Org"
        assert ledger.store.recorder.max_notification_id() == 1
    finally:
        ledger.close()


def test_start_up_runs_no_ddl(pg_server: TestServer, tmp_path: Path) -> None:
    """While a session holds the strongest lock on the event table (as a
    migration would), a process still starts: it only reads the version."""
    url = pg_server.new_database("noddl")
    started: list[float] = []

    def start() -> None:
        began = time.monotonic()
        bootstrap(make_settings(tmp_path), url=url, pool_size=1).close()
        started.append(time.monotonic() - began)

    with psycopg.connect(url) as blocker:
        blocker.execute("LOCK TABLE ledger_events IN ACCESS EXCLUSIVE MODE")
        for table in ("api_tokens", "notify_position", "access_tokens", "projections.generations"):
            blocker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        starting = threading.Thread(target=start, daemon=True)
        starting.start()
        starting.join(timeout=15)
        finished = not starting.is_alive()
        blocker.rollback()
    starting.join(timeout=30)
    assert finished, "bootstrap waited for a table lock: it runs DDL on start-up"
    assert started and started[0] < 15


def test_concurrent_migrators_apply_each_migration_once(pg_server: TestServer) -> None:
    url = pg_server.new_database("race", migrated=False)
    results: list[list[int]] = []
    threads = [threading.Thread(target=lambda: results.append(migrations.migrate(url))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results, key=len) == [[], [], [], list(range(1, migrations.target_version() + 1))]
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM ledger_schema_migrations").fetchone() == (
            migrations.target_version(),)


def test_a_migration_that_cannot_get_its_locks_gives_up_and_changes_nothing(
    pg_server: TestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 1 re-applied to a database in use: a long transaction holds
    a row in ``access_tokens`` (whose index it re-checks).  Each attempt waits
    at most the lock timeout, so readers queued behind it are released in
    time; after the last attempt it fails and nothing is recorded."""
    url = pg_server.new_database("busy")
    monkeypatch.setattr(migrations, "MIGRATION_LOCK_TIMEOUT", 1)
    monkeypatch.setattr(migrations, "MIGRATION_ATTEMPTS", 2)
    monkeypatch.setattr(migrations, "BACKOFF_INITIAL", 0.1)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM ledger_schema_migrations WHERE version = 1")
    with psycopg.connect(url) as busy:
        busy.execute("INSERT INTO access_tokens (token_hash, registration_id, event_id, issued_at)"
                      " VALUES ('t', 'r', 'e', now())")
        began = time.monotonic()
        with pytest.raises(migrations.MigrationFailed, match=r"0001_first_release\.sql: a table it changes"):
            migrations.migrate(url)
        assert time.monotonic() - began < 10
        busy.rollback()
    with pytest.raises(migrations.SchemaBehind, match=r"missing 0001_first_release\.sql"):
        migrations.check(url)
    assert migrations.migrate(url) == [1]


def test_an_edited_migration_is_refused(pg_server: TestServer) -> None:
    url = pg_server.new_database("edited")
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE ledger_schema_migrations SET checksum = 'other' WHERE version = 1")
    with pytest.raises(migrations.SchemaMismatch, match=r"0001_first_release\.sql differs"):
        migrations.check(url)
    with pytest.raises(migrations.SchemaMismatch):
        migrations.migrate(url)


def test_commands_refuse_a_database_behind_and_ledger_migrate_fixes_it(pg_server: TestServer,
                                                                        tmp_path: Path) -> None:
    url = pg_server.new_database("cli", migrated=False)
    env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_DATA_DIR": str(tmp_path),
           "LEDGER_SECRET_KEY": "11" * 32, "PYTHONPATH": str(ROOT)}

    def ledger(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "entrypoints.cli", *args], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    for command in (("token", "create", "--role", "admin"), ("worker", "notify"), ("serve",)):
        refused = ledger(*command)
        assert refused.returncode != 0 and "run `ledger migrate`" in refused.stderr, (command, refused.stderr)
        assert refused.stdout == ""
    migrated = ledger("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert re.search(r"Database schema: version \d+ \(applied 1, 2, ", migrated.stderr), migrated.stderr
    token = ledger("token", "create", "--role", "admin")
    assert token.returncode == 0 and token.stdout.startswith("ldg_"), token.stderr
    assert "up to date" in ledger("migrate").stderr


def test_migration_15_lets_the_books_be_read_from_layout_5_until_the_rebuild(
    pg_server: TestServer, tmp_path: Path
) -> None:
    """0015 changes the views' layout (the runner rebuilds them); until the
    rebuild switches over, the trial balance reads the layout-5 tables, which
    0015 gives the column it orders accounts by."""
    url = pg_server.new_database("layout5", migrated=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(migrations._CREATE_VERSION_TABLE)
        for migration in migrations.available()[:14]:
            migrations._apply(conn, migration)
        schema = conn.execute("SELECT schema_name FROM projections.generations WHERE layout = 5").fetchone()
        assert schema is not None
        conn.execute("UPDATE projections.generations SET position = 7")  # events applied: no fresh start
        organizer = str(uuid4())
        conn.cursor().executemany(
            f'INSERT INTO "{schema[0]}".book_accounts (account_id, organizer_id, currency, account, debit_minor,'
            " credit_minor, position) VALUES (%s, %s, 'USD', %s, %s, %s, 7)",
            [(1, organizer, "ticket_revenue", 0, 900), (2, organizer, "held:stripe", 900, 0)])
    assert migrations.migrate(url) == list(range(15, migrations.target_version() + 1))
    ledger = bootstrap(make_settings(tmp_path), url=url, pool_size=1)
    try:
        found = books_query.trial_balance(ledger.db)
        assert [(a.account, a.balance_minor) for a in found.accounts] == [("held:stripe", 900),
                                                                         ("ticket_revenue", -900)]
        assert found.balanced
        with ledger.db.transaction() as conn:
            assert conn.execute("SELECT layout FROM projections.generations").fetchall() == [(5,)]
    finally:
        ledger.close()
