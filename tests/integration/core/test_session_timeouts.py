"""Every connection the ledger opens limits lock waits and idle transactions
(ledger/database.py): the project's pool, the event store's pool, the LISTEN
connection of a log follower and the migrator's one-off connections."""

from __future__ import annotations

from typing import Any

import psycopg

from ledger import database
from ledger.container import Ledger
from ledger.log_follower import CommitListener


def _timeouts(conn: psycopg.Connection[Any]) -> tuple[str, str]:
    lock = conn.execute("SHOW lock_timeout").fetchone()
    idle = conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()
    assert lock is not None and idle is not None
    return str(lock[0] if isinstance(lock, tuple) else lock["lock_timeout"]), str(
        idle[0] if isinstance(idle, tuple) else idle["idle_in_transaction_session_timeout"])


def test_every_connection_sets_lock_and_idle_timeouts(fresh_ledger: Ledger) -> None:
    assert database.LOCK_TIMEOUT_MS == 5_000
    with fresh_ledger.db.transaction() as conn:
        assert _timeouts(conn) == ("5s", "1min")
    with fresh_ledger.store.recorder.datastore.get_connection() as conn:  # type: ignore[attr-defined]
        assert _timeouts(conn) == ("5s", "5s")
    listener = CommitListener(fresh_ledger.database_url, "ledger_events")
    try:
        assert _timeouts(listener.conn) == ("5s", "1min")
    finally:
        listener.close()
    with database.connect(fresh_ledger.database_url) as conn:
        assert _timeouts(conn) == ("5s", "1min")


def test_options_in_the_url_are_kept(fresh_ledger: Ledger) -> None:
    """An external LEDGER_DATABASE_URL may carry its own ``options``."""
    url = fresh_ledger.database_url
    url += ("&" if "?" in url else "?") + "options=-c%20application_name%3Dledger-test"
    with database.connect(url) as conn:
        assert _timeouts(conn) == ("5s", "1min")
        assert conn.execute("SHOW application_name").fetchone() == ("ledger-test",)
