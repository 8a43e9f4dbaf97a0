"""The composition root: settings → database → event store → service.

Everything with a connection or a thread is built here and passed in, so the
CLI, the API, the workers and the tests build the very same object graph.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg

from entrypoints.providers_wiring import install as install_providers
from ledger.application import LedgerStore
from ledger.config import Settings
from ledger.database import SCHEMA_LOCK_KEY, Database, embedded_server_url, eventsourcing_env
from ledger.secret_box import SecretBox
from ledger.service import Clock, LedgerService, utc_now


@dataclass
class Ledger:
    """The wired-up core, as every entry point sees it."""

    settings: Settings
    database_url: str
    db: Database
    store: LedgerStore
    service: LedgerService
    secret_box: SecretBox
    extras: dict[str, Any] = field(default_factory=dict)

    def close(self) -> None:
        self.store.close()
        self.db.close()


def database_url(settings: Settings) -> str:
    return settings.database_url or embedded_server_url(settings.data_dir)


def bootstrap(
    settings: Settings | None = None, *, clock: Clock = utc_now, pool_size: int = 10,
    url: str | None = None,
) -> Ledger:
    settings = settings or Settings.from_env()
    url = url or database_url(settings)
    # One process at a time creates tables: the event store's own and ours.
    with psycopg.connect(url, autocommit=True) as lock_conn:
        lock_conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_KEY,))
        try:
            store = LedgerStore(env=eventsourcing_env(url, pool_size=pool_size))
            db = Database(url, max_size=pool_size)
            db.create_schema()
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_KEY,))
    service = LedgerService(store, clock=clock, seat_hold=timedelta(seconds=settings.seat_hold_seconds))
    ledger = Ledger(
        settings=settings, database_url=url, db=db, store=store, service=service,
        secret_box=SecretBox(settings.secret_key),
    )
    install_providers(ledger)
    return ledger
