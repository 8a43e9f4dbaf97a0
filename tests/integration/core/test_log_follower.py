"""``ledger.log_follower`` against a real PostgreSQL: woken by the event store's
NOTIFY (not by polling), resumes from the consumer's own position, backs off and
retries the same batch after the consumer raised, stands by, stops promptly."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ledger.container import Ledger
from ledger.event_log import head
from ledger.log_follower import CommitListener, LogBatch, LogConsumer, LogFollower, Standby, read_batch


@dataclass
class Recorder(LogConsumer):
    """Keeps its position in memory (a real consumer commits it with its effect)."""

    position: int = 0
    fail_times: int = 0  #: raise from this many consume() calls first
    standby_times: int = 0  #: raise Standby from this many attach() calls first
    batches: list[tuple[float, int, list[int], int]] = field(default_factory=list)
    resumes: list[int] = field(default_factory=list)
    abandoned: list[BaseException] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def attach(self, listener: CommitListener) -> None:
        if self.standby_times:
            self.standby_times -= 1
            raise Standby("another one holds the job")

    def resume(self) -> int:
        self.resumes.append(self.position)
        return self.position

    def consume(self, batch: LogBatch) -> int:
        with self.changed:
            self.batches.append((time.monotonic(), batch.after, [n.id for n in batch.notifications], batch.reached))
            self.changed.notify_all()
        if self.fail_times:
            self.fail_times -= 1
            raise RuntimeError("poisoned")
        self.position = batch.reached
        return batch.reached

    def abandon(self, error: BaseException) -> None:
        self.abandoned.append(error)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(predicate, timeout), "timed out"


@contextmanager
def following(
    ledger: Ledger, consumer: Recorder, *, batch_size: int = 500, **options: float
) -> Iterator[tuple[LogFollower, list[int]]]:
    """The follower in a thread; yields it and the positions it read after.
    On exit it must stop within a second."""
    reads: list[int] = []

    def read(after: int) -> LogBatch:
        reads.append(after)
        return read_batch(ledger.store.recorder, after, batch_size)

    options = {"reread_after": 60.0, **options}
    follower = LogFollower(
        ledger.store.recorder, ledger.database_url, consumer, name="test", batch_size=batch_size, read=read,
        **options,
    )
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield follower, reads
    finally:
        stop.set()
        started = time.monotonic()
        thread.join(5)
        assert not thread.is_alive() and time.monotonic() - started < 1.0, "the follower did not stop promptly"


def organizers(ledger: Ledger, count: int) -> list[int]:
    """Commit ``count`` events; their positions."""
    positions = []
    for n in range(count):
        ledger.service.register_organizer(name=f"Org {n}", country="US", plan_size=5)
        positions.append(head(ledger.store))
    return positions


def test_a_commit_wakes_it_within_milliseconds_and_idle_means_no_reads(fresh_ledger: Ledger) -> None:
    """``reread_after`` is a minute: only the NOTIFY can explain a prompt read."""
    first = organizers(fresh_ledger, 1)[0]
    consumer = Recorder()
    with following(fresh_ledger, consumer) as (_, reads):
        consumer.wait_for(lambda: consumer.position == first)
        time.sleep(1.0)  # idle: waiting on LISTEN
        idle_reads = len(reads)
        time.sleep(1.0)
        assert len(reads) == idle_reads, "it read the log while nothing was committed"
        for _ in range(3):
            started = time.monotonic()
            organizers(fresh_ledger, 1)
            consumer.wait_for(lambda: consumer.position == head(fresh_ledger.store), timeout=5)
            assert consumer.batches[-1][0] - started < 0.5, "the commit did not wake the follower promptly"


def test_it_resumes_from_the_consumers_position_in_bounded_batches(fresh_ledger: Ledger) -> None:
    positions = organizers(fresh_ledger, 7)
    consumer = Recorder(position=positions[2])
    with following(fresh_ledger, consumer, batch_size=2):
        consumer.wait_for(lambda: consumer.position == positions[-1])
    assert consumer.resumes == [positions[2]]
    handed = [n for _, _, ids, _ in consumer.batches for n in ids]
    assert handed == positions[3:]  # nothing before the consumer's position, nothing twice
    assert all(len(ids) <= 2 for _, _, ids, _ in consumer.batches)
    assert [after for _, after, _, _ in consumer.batches] == [positions[2], positions[4]]


def test_a_failing_batch_is_retried_the_same_after_a_growing_backoff(fresh_ledger: Ledger) -> None:
    positions = organizers(fresh_ledger, 3)
    consumer = Recorder(fail_times=2)
    with following(fresh_ledger, consumer, backoff_initial=0.2, backoff_max=0.3) as (follower, _):
        consumer.wait_for(lambda: len(consumer.batches) == 2)
        health = follower.health
        assert health.failing and health.failing_after == 0
        assert health.last_error == "RuntimeError: poisoned"
        consumer.wait_for(lambda: consumer.position == positions[-1])
        healthy = follower.health
    attempts = consumer.batches[:3]
    assert {(after, tuple(ids)) for _, after, ids, _ in attempts} == {(0, tuple(positions))}  # the same batch
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(attempts)]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.3, gaps  # 0.2 s, then doubled but capped at 0.3 s
    assert consumer.resumes == [0, 0, 0]  # asked where to start after each failure
    assert len(consumer.abandoned) == 2
    assert not healthy.failing and healthy.failures == 0 and healthy.failing_after is None
    assert healthy.last_error == "RuntimeError: poisoned" and healthy.position == positions[-1]


def test_a_consumer_on_standby_is_asked_again_without_failing(fresh_ledger: Ledger) -> None:
    position = organizers(fresh_ledger, 1)[0]
    consumer = Recorder(standby_times=1)
    with following(fresh_ledger, consumer, standby_wait=0.2) as (follower, _):
        time.sleep(0.1)
        assert follower.health.standing_by and not consumer.resumes
        consumer.wait_for(lambda: consumer.position == position)
        assert not follower.health.standing_by and follower.health.failures == 0
    assert not consumer.abandoned


def test_it_stops_promptly_during_a_long_backoff(fresh_ledger: Ledger) -> None:
    organizers(fresh_ledger, 1)
    consumer = Recorder(fail_times=100)
    with following(fresh_ledger, consumer, backoff_initial=30.0, backoff_max=30.0) as (follower, _):
        consumer.wait_for(lambda: len(consumer.batches) == 1)
        time.sleep(0.2)
        assert follower.health.failures == 1  # now waiting out 30 s; the exit check wants < 1 s
