"""``ledger.consumer_health`` against a real PostgreSQL: a follower's health
reaches other processes with a bounded number of writes, carries no personal
data, and a consumer behind the head that does not move counts as stuck."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ledger import consumer_health
from ledger.consumer_health import WRITE_INTERVAL, FollowerHealth, HealthWriter, safe_message
from ledger.container import Ledger


def test_writes_are_bounded_but_every_change_of_state_is_written_at_once(fresh_ledger: Ledger) -> None:
    writer = HealthWriter(fresh_ledger.database_url, "demo")
    try:
        t = 1000.0
        healthy = FollowerHealth(position=10)
        assert writer.report(healthy, now=t)  # the first position: at once
        assert not writer.report(healthy, now=t + 5)  # nothing changed: no write
        moved = [writer.report(replace(healthy, position=10 + i), now=t + i * 0.01) for i in range(1, 200)]
        assert sum(moved) <= 1 + 2 * WRITE_INTERVAL  # 200 batches in 2 s: a write per second at most
        failing = replace(healthy, position=300, failures=1, failing_after=300, error_class="ValueError",
                          error="x", failing_since=consumer_health.now())
        assert writer.report(failing, now=t + 2.001)  # healthy -> failing: at once
        assert not writer.report(replace(failing, failures=2), now=t + 2.002)  # a retry: within the bound
        recovered = replace(healthy, position=400)
        assert writer.report(recovered, now=t + 2.003)  # failing -> healthy: at once
    finally:
        writer.close()
    (row,) = consumer_health.read(fresh_ledger.db)
    assert (row.name, row.position, row.failures, row.error_class) == ("demo", 400, 0, None)


def test_a_consumer_behind_the_head_that_does_not_move_is_lagging(fresh_ledger: Ledger) -> None:
    writer = HealthWriter(fresh_ledger.database_url, "slow")
    try:
        writer.report(FollowerHealth(position=5))
    finally:
        writer.close()
    (row,) = consumer_health.read(fresh_ledger.db)
    soon = row.moved_at + timedelta(seconds=1)
    later = row.moved_at + timedelta(seconds=consumer_health.STALL_SECONDS + 1)
    assert row.state(head=5, now=later) == "ok"  # caught up: idle is fine
    assert row.state(head=9, now=soon) == "ok"  # behind, but it just moved
    assert row.state(head=9, now=later) == "lagging"
    assert row.as_dict(9, later)["lag"] == 4


def test_error_messages_keep_no_personal_data() -> None:
    error = ValueError("registration of 'Ada O\\'Hara' <ada@example.test> failed: value \"secret\" 1234567890")
    message = safe_message(error)
    assert "Ada" not in message and "ada@" not in message and "secret" not in message and "1234567890" not in message
    assert message.startswith("registration of '…' <e-mail> failed")
    assert safe_message(KeyError("ada@example.test")) == ""
    assert len(safe_message(ValueError("x" * 10_000))) == consumer_health.MAX_MESSAGE
