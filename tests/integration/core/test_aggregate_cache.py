"""The store's aggregate cache (``ledger.aggregate_cache``) on a real store:
every read is the current state (also after another ledger -- another process
-- wrote), every reader gets its own object, and what a command does to its
object never reaches the cache unless saved."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from entrypoints.bootstrap import bootstrap
from ledger.aggregate_cache import LedgerRepository
from ledger.errors import CapacityExhausted
from tests.support.manual_event import manual_event
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

NOW = datetime(2037, 11, 1, tzinfo=UTC)




def test_readers_get_their_own_copies(pg_server: TestServer, tmp_path: Path) -> None:
    ledger = bootstrap(make_settings(tmp_path), url=pg_server.new_database())
    try:
        assert isinstance(ledger.store.repository, LedgerRepository)
        _, event_id = manual_event(ledger)
        first, second = ledger.service.event(event_id), ledger.service.event(event_id)
        assert first is not second and first.holds is not second.holds
        first.hold_seat("unsaved", capacity=10, now=NOW, until=NOW + timedelta(minutes=5))
        assert "unsaved" not in ledger.service.event(event_id).holds  # never saved: never seen

        with ThreadPoolExecutor(max_workers=8) as pool:
            copies = list(pool.map(lambda _: ledger.service.event(event_id), range(32)))
        assert len({id(c.holds) for c in copies}) == 32  # all alive: every reader its own dict
    finally:
        ledger.close()


def test_a_plan_change_in_another_process_limits_the_next_sale(pg_server: TestServer, tmp_path: Path) -> None:
    """``capacity_of`` reads the cached organizer in place: it must still see
    a plan lowered by another ledger before the very next sale."""
    url = pg_server.new_database()
    a = bootstrap(make_settings(tmp_path / "a"), url=url)
    b = bootstrap(make_settings(tmp_path / "b"), url=url)
    try:
        org_id, event_id = manual_event(a, plan=10)
        a.service.register_participant(event_id, name="p0", email="p0@example.com", fields={})
        assert a.service.capacity_of(a.service.event(event_id)) == 10  # now cached in a
        b.service.change_plan(org_id, 1)
        assert a.service.capacity_of(a.service.event(event_id)) == 1
        with pytest.raises(CapacityExhausted):
            a.service.register_participant(event_id, name="p1", email="p1@example.com", fields={})
    finally:
        a.close()
        b.close()
