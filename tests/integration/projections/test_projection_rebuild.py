"""``rebuild``: fresh tables from position 0, an atomic switch while readers
keep the old ones, resumable after an interruption, one at a time."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from ledger.container import Ledger
from ledger.money import Money
from ledger.scope import ANYONE
from projections import generations, runner, who_paid_query
from projections.paging import RebuildInProgress
from projections.rebuild import REBUILD_LOCK_KEY, rebuild
from projections.runner import ProjectionRunner
from tests.integration.projections.history import (
    organizer_with_event,
    paid_registration,
    project,
    snapshot,
    write_bulk,
)


class StopAfter(threading.Event):
    """A stop flag that turns itself on after ``checks`` looks (an interruption
    at a chosen batch boundary)."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.left = checks

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0 or super().is_set()


def schemas(ledger: Ledger) -> set[str]:
    with ledger.db.transaction() as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'projections_g%'").fetchall()
    return {r[0] for r in rows}


def test_rebuild_switches_to_a_fresh_generation_and_drops_the_old(fresh_ledger: Ledger) -> None:
    _, event_id = organizer_with_event(fresh_ledger)
    for n in range(5):
        paid_registration(fresh_ledger, event_id, n)
    project(fresh_ledger)
    before = snapshot(fresh_ledger)
    result = rebuild(fresh_ledger)
    assert (result.generation, result.resumed) == (2, False)
    assert result.events == result.position > 0
    assert snapshot(fresh_ledger) == before
    assert schemas(fresh_ledger) == {"projections_g2"}
    assert runner.lag(fresh_ledger) == 0


def test_an_interrupted_rebuild_resumes_while_readers_keep_the_old_views(fresh_ledger: Ledger) -> None:
    write_bulk(fresh_ledger, 1200)
    project(fresh_ledger)
    expected = snapshot(fresh_ledger)
    with fresh_ledger.db.transaction() as conn:
        found = conn.execute("SELECT event_id::text FROM projections.paid_events").fetchone()
    assert found is not None
    event_id = found[0]
    first_page = who_paid_query.page(fresh_ledger, event_id, scope=ANYONE, limit=50)

    partial = rebuild(fresh_ledger, batch_size=500, stop=StopAfter(2))
    status = runner.status(fresh_ledger)
    assert status.rebuilding and 0 < status.rebuild_position < status.head  # type: ignore[operator]
    assert status.generation == 1 and partial.position < status.head
    # The API still reads generation 1, complete and unchanged.
    assert who_paid_query.page(fresh_ledger, event_id, scope=ANYONE, limit=50) == first_page

    finished = rebuild(fresh_ledger, batch_size=500)
    assert finished.resumed and finished.generation == partial.generation
    assert partial.events + finished.events == finished.position
    assert snapshot(fresh_ledger) == expected
    assert not runner.status(fresh_ledger).rebuilding


def test_restart_throws_an_unfinished_rebuild_away(fresh_ledger: Ledger) -> None:
    write_bulk(fresh_ledger, 400)
    project(fresh_ledger)
    expected = snapshot(fresh_ledger)
    partial = rebuild(fresh_ledger, batch_size=300, stop=StopAfter(1))
    assert runner.status(fresh_ledger).rebuilding
    fresh = rebuild(fresh_ledger, restart=True)
    assert not fresh.resumed and fresh.generation == partial.generation + 1
    assert fresh.events == fresh.position
    assert snapshot(fresh_ledger) == expected
    assert schemas(fresh_ledger) == {f"projections_g{fresh.generation}"}


def test_only_one_rebuild_at_a_time(fresh_ledger: Ledger) -> None:
    with psycopg.connect(fresh_ledger.database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (REBUILD_LOCK_KEY,))
        with pytest.raises(RebuildInProgress) as refused:
            rebuild(fresh_ledger)
        assert refused.value.status == 409 and refused.value.code == "rebuild_in_progress"


def test_rebuild_while_the_runner_follows_and_commands_keep_coming(fresh_ledger: Ledger) -> None:
    """The switch protocol: nothing applied twice or lost across the switch."""
    # Seats enough for whatever the writer manages while two rebuilds run (a
    # thousand ran out once: the writer's thread died and the test went on
    # without commands coming).
    _, event_id = organizer_with_event(fresh_ledger, plan_size=1_000_000)
    write_bulk(fresh_ledger, 600)
    stop = threading.Event()
    follower = threading.Thread(target=ProjectionRunner(fresh_ledger, batch_size=50).run, args=(stop,))
    follower.start()
    writing = threading.Event()

    failed: list[BaseException] = []

    def write() -> None:
        n = 0
        try:
            while not writing.is_set():
                rid = paid_registration(fresh_ledger, event_id, n)
                if n % 3 == 0:
                    fresh_ledger.service.record_refund(rid, amount=Money(100, "USD"), reference=f"r{n}")
                n += 1
        except BaseException as exc:  # a writer that stopped early fails the test, not only warns
            failed.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(2):
            time.sleep(0.2)
            rebuild(fresh_ledger, batch_size=200)
    finally:
        writing.set()
        writer.join()
    assert not failed, failed
    deadline = time.monotonic() + 10
    while runner.lag(fresh_ledger) and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    follower.join(timeout=5)
    followed = snapshot(fresh_ledger)
    rebuild(fresh_ledger)
    assert snapshot(fresh_ledger) == followed
    with fresh_ledger.db.transaction() as conn:
        assert generations.active(conn).generation == 4  # type: ignore[union-attr]


def test_progress_bar_shows_done_total_and_rate(fresh_ledger: Ledger, capfd: pytest.CaptureFixture[str]) -> None:
    write_bulk(fresh_ledger, 300)
    rebuild(fresh_ledger, progress=True, batch_size=200)
    err = capfd.readouterr().err
    assert "rebuilding views" in err and "events/s" in err
    assert any(f"{n}/{n}" in err for n in range(1000, 3000))  # done/total at the end
