"""Group-committed seat sales on one hot event: a registration rush that does
not serialize one commit at a time.

Seats live on the event's aggregate (``ledger.domain.paid_event``), so every
sale writes a new version of it.  One sale at a time, a rush runs at one
commit round trip (plus one aggregate read and copy) per seat.  Here the sales
for one event that arrive while another batch for it is being written queue
up; the first caller that finds no batch in flight becomes the *leader*, takes
every queued sale (up to :data:`MAX_SALES`), reads the event once, applies the
sales to it one after another in memory -- each sees the seats the ones before
it took, so R9 holds inside the batch -- and saves the event with every new
registration in ONE transaction.  Each caller returns only after that commit
(durability before the 201), with its own outcome: a sale refused in the batch
(``CapacityExhausted``, a cancelled event …) gets its own error while the
others proceed.

Across processes nothing changes: the batch's save is one optimistic write of
the event's next versions; when another process wrote the event first, the
save conflicts and the leader reads the event again and re-applies the whole
batch (bounded, randomized back-off) -- the client never sees the conflict.

Guarantees kept:

* **exact seat count**: the only writer of the event's versions is the batch's
  single transaction; a conflict re-decides every sale against the new state;
* **idempotency**: a registration's id is derived from its Idempotency-Key;
  two sales with the same id -- or the same e-mail address, which claims one
  row per event -- never share a batch (the later one waits for the next),
  and a sale whose id or address turns out to be recorded already looks them
  up before a re-run after a conflict, so a second process that created it
  first is answered from it (see "A conflict's re-run" below);
* **the audit actor**: each sale runs in its caller's context (its actor, its
  idempotency key) and its events are stamped with that actor before the
  leader saves them;
* **one writer per event per process**: the leader holds the event's
  in-process command lock (``ledger.command_retry``) while it reads, decides
  and saves, like any other command on the event.

A conflict's re-run.  A batch's save fails as a whole when any one of its
sales conflicts: a person who submits the sign-up twice (the address already
claimed), another process that wrote the event first, a save whose reply was
lost but which committed.  The re-run used to have every sale of the batch
look its id and its address up again -- two queries per sale, so one repeated
address in a rush batch of 40 cost 80 queries and a back-off.  Now the leader
asks once which of the batch's dedupe keys are already recorded (``recorded``:
one query for the ids, one for the addresses) and only the sales it names look
themselves up (``recheck``); when it names none, the conflict was another
writer's and the leader backs off before reading the event again.
"""

from __future__ import annotations

import contextvars
import random
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, TypeVar
from uuid import UUID

from eventsourcing.persistence import RecordConflictError

from ledger.actor import current_actor
from ledger.aggregate_cache import LedgerRepository
from ledger.application import LedgerStore
from ledger.command_retry import CommandRetry
from ledger.domain.paid_event import PaidEvent
from ledger.errors import VersionConflict
from ledger.handover import settle_unsettled, sleeping_lock, wake

T = TypeVar("T")

class SaleRead(NamedTuple):
    """What a batch's ``load`` read: the event, its capacity, and whether
    both came from the cache without a query (trusted reads,
    ``ledger.aggregate_cache``).  A trusted read's save carries ``checks``
    (the organizer's version: ``ledger.application.ReadCheck``), and a sale
    refused on it is decided again on a fresh read."""

    event: PaidEvent
    capacity: int
    trusted: bool = False
    checks: tuple[Any, ...] = ()


#: ``load(fresh)``: the event and its capacity; ``fresh``: as current as the database.
Loader = Callable[[bool], SaleRead]

MAX_SALES = 150
"""Sales per batch: two events each (the seat, the registration), kept under
the recorder's group-commit limit (``LedgerRecorder.GROUP_LIMIT``)."""


@dataclass
class Decision(Generic[T]):
    """What one sale decided on the event: its answer, the other aggregates
    it changed (the new registration), and list-valued save keywords
    (e.g. ``idempotency_marks``) that join the batch's transaction."""

    result: T
    save: Sequence[Any] = ()
    save_kwargs: dict[str, Sequence[Any]] = field(default_factory=dict)


Sale = Callable[[PaidEvent, int, bool], Decision[Any]]
"""``sale(event, capacity, recheck)``: decide one sale on ``event`` (mutating
it only if the sale goes ahead, and only as its last step -- a sale that raises
must leave the event untouched).  ``recheck`` is true on a re-run after a
conflict: look the aggregate to create up again first."""


@dataclass(eq=False)
class _Queued:
    """One sale waiting in its event's lane.  ``wake`` is its caller's own
    lock, taken when it queues: the caller sleeps on it and the lane's leader
    releases it once -- when the sale is decided and saved, or to hand the
    caller the lead (it is then the lane's first)."""

    sale: Sale
    dedupe: Sequence[Hashable]
    context: contextvars.Context
    recheck: bool = True  # on a re-run: look this sale's own aggregate up first (see the module doc)
    decision: Decision[Any] | None = None
    error: BaseException | None = None
    done: bool = False
    wake: Any = field(default_factory=sleeping_lock)


@dataclass
class _Lane:
    """One event's queue.  A batch that ends wakes its own sellers and hands
    the lead to the next one queued -- not every seller of the event (each
    woken only to sleep again), nor of other events."""

    queue: list[_Queued] = field(default_factory=list)
    leader: bool = False  # a seller is running a batch (true whenever the queue is not empty)


class SalesBatcher:
    """One lane per hot event; see the module docstring."""

    def __init__(self, store: LedgerStore, retry: CommandRetry, *, max_attempts: int = 60,
                 max_sales: int = MAX_SALES,
                 recorded: Callable[[UUID, list[Hashable]], set[Hashable]] | None = None) -> None:
        """``recorded(event_id, keys)``: which of these dedupe keys some
        committed change already holds (a registration's id, an address
        claimed on the event); without it every sale of a re-run rechecks."""
        self.store = store
        self.retry = retry
        self.max_attempts = max_attempts
        self.max_sales = max_sales
        self.recorded = recorded
        self._lock = threading.Lock()
        self._lanes: dict[UUID, _Lane] = {}
        self.batches = 0  # committed batches and the sales in them: the average batch size
        self.sales = 0
        self.wakeups = 0  # sellers woken by a leader (each waiting seller exactly once)
        self.rechecked = 0  # sales re-run with their look-ups after a conflict
        self.conflicts = 0  # batches whose save was refused (and decided again)

    def sell(self, event_id: UUID, load: Loader, sale: Sale, *,
             dedupe: Sequence[Hashable] = ()) -> Any:
        """Queue ``sale`` for the event, lead a batch when none is in flight,
        and return this sale's result once its batch committed (or raise its
        own error).  ``load(fresh)`` reads the event (the cached instance
        itself with a ``LedgerRepository``, which the batch only ever drafts
        on, else a copy) and its capacity: as current as the database when
        ``fresh``, else possibly from the cache alone (:class:`SaleRead`).
        ``dedupe``: sales sharing any key (the same registration id, the
        same e-mail address) never share a batch."""
        mine = _Queued(sale, dedupe, contextvars.copy_context())
        with self._lock:
            lane = self._lanes.get(event_id)
            if lane is None:
                lane = self._lanes[event_id] = _Lane()
            lane.queue.append(mine)
            leading = not lane.leader
            lane.leader = True
        if not leading:
            mine.wake.acquire()  # until the leader says: done, or lead (then ``mine`` is the lane's first)
        while not mine.done:
            with self._lock:
                batch = self._take(lane)  # the lane's first is always taken: ``mine``
            taken = list(batch)  # ``_run`` may drop a sale from ``batch``: it is woken all the same
            try:
                self._run(event_id, batch, load)
            finally:
                self._hand_over(event_id, lane, taken, mine)
        if mine.error is not None:
            raise mine.error
        assert mine.decision is not None
        return mine.decision.result

    def _hand_over(self, event_id: UUID, lane: _Lane, taken: list[_Queued], mine: _Queued) -> None:
        """After a batch: the lead to the lane's first seller (if any; else
        the lane is dropped), then wake the batch's other sellers, whose
        outcomes are set -- and no one else.  The next batch starts before
        the finished sellers compete for the GIL to answer."""
        settle_unsettled(taken, "the batch did not settle this sale")  # ``_run`` settles each
        woken = [queued for queued in taken if queued is not mine]
        with self._lock:
            following = lane.queue[0] if lane.queue else None
            if following is None:
                lane.leader = False
                if self._lanes.get(event_id) is lane:
                    del self._lanes[event_id]  # every seller of this lane is done
            self.wakeups += len(woken) + (following is not None)
        wake(following, woken)

    def _take(self, lane: _Lane) -> list[_Queued]:
        """With the lock held: the next batch, in queue order -- the first
        sale always, then each that shares no dedupe key with those taken,
        up to ``max_sales``."""
        batch: list[_Queued] = []
        keys: set[Hashable] = set()
        rest: list[_Queued] = []
        for queued in lane.queue:
            if len(batch) < self.max_sales and keys.isdisjoint(queued.dedupe):
                batch.append(queued)
                keys.update(queued.dedupe)
            else:
                rest.append(queued)
        lane.queue[:] = rest
        return batch

    def _run(self, event_id: UUID, batch: list[_Queued], load: Loader) -> None:
        try:
            with self.retry.locks.reserved(event_id) as lock:
                for attempt in range(self.max_attempts):
                    try:
                        with lock:
                            if not self._attempt(batch, load, recheck=attempt > 0, fresh=attempt > 0):
                                # a sale refused on a read from the cache alone: decide again on a fresh one
                                self._attempt(batch, load, recheck=False, fresh=True)
                        return
                    except RecordConflictError:
                        with self._lock:
                            self.conflicts += 1
                        if not self._mark_rechecks(event_id, batch):  # another writer's: back off
                            time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            raise VersionConflict("too many concurrent changes; try again")
        except BaseException as exc:  # the whole batch failed (database down, event gone …)
            for queued in batch:
                if not queued.done:
                    queued.decision, queued.error, queued.done = None, exc, True

    def _mark_rechecks(self, event_id: UUID, batch: list[_Queued]) -> bool:
        """After a conflict: which sales must look themselves up when re-run
        (a key of theirs already recorded; every sale without ``recorded`` or
        without keys).  True when some key was recorded -- the conflict is
        explained by it, so the re-run need not back off."""
        if self.recorded is None:
            return False
        keys = [key for queued in batch for key in queued.dedupe]
        taken = self.recorded(event_id, keys) if keys else set()
        for queued in batch:
            queued.recheck = not queued.dedupe or not taken.isdisjoint(queued.dedupe)
        return bool(taken)

    def _attempt(self, batch: list[_Queued], load: Loader, *, recheck: bool, fresh: bool) -> bool:
        """Decide every sale on one read of the event and save them in one
        transaction; outcomes are published only after the commit.

        The sales are decided on a draft of the cached event
        (``LedgerRepository.drafting``: no copy, whatever the event's size)
        and the committed events are applied to the cache afterwards, so a
        reader never sees an unsaved sale and a failed save leaves the cache
        as it was.

        ``False`` (nothing saved, no outcome published) when a sale was
        refused on a read from the cache alone: a seat another process freed
        a moment ago may not be known here yet, so the caller decides again on
        a fresh read before anyone is refused."""
        if recheck:
            with self._lock:
                self.rechecked += sum(queued.recheck for queued in batch)
        loaded, capacity, trusted, checks = load(fresh)
        repository = self.store.repository
        if isinstance(repository, LedgerRepository):
            with repository.drafting(loaded) as event:
                outcomes, to_save, save_kwargs = self._decide(batch, event, capacity, recheck)
        else:
            event = loaded
            outcomes, to_save, save_kwargs = self._decide(batch, event, capacity, recheck)
        if trusted and any(error is not None for _, _, error in outcomes):
            return False
        if event.pending_events or to_save:
            committed = list(event.pending_events)
            if checks:
                save_kwargs.setdefault("idempotency_marks", []).extend(checks)
            self.store.save(event, *to_save, **save_kwargs)
            if isinstance(repository, LedgerRepository):
                repository.apply_committed(event.id, committed, draft=event, origin=loaded)
        with self._lock:
            self.batches += 1
            self.sales += len(batch)
        for queued, outcome, error in outcomes:
            queued.decision, queued.error, queued.done = outcome, error, True
        return True

    @staticmethod
    def _decide(
        batch: list[_Queued], event: PaidEvent, capacity: int, recheck: bool,
    ) -> tuple[list[tuple[_Queued, Decision[Any] | None, BaseException | None]], list[Any], dict[str, list[Any]]]:
        """Run each sale on ``event`` in its caller's context: (outcomes, the
        other aggregates to save, the save keywords)."""
        outcomes: list[tuple[_Queued, Decision[Any] | None, BaseException | None]] = []
        to_save: list[Any] = []
        save_kwargs: dict[str, list[Any]] = {}
        for queued in list(batch):
            seen = len(event.pending_events)
            try:
                decision = queued.context.run(queued.sale, event, capacity, recheck and queued.recheck)
            except Exception as exc:
                if len(event.pending_events) != seen:  # a sale broke its contract: start over without it
                    queued.decision, queued.error, queued.done = None, exc, True
                    batch.remove(queued)
                    raise RecordConflictError("re-run the batch without a failed sale") from exc
                outcomes.append((queued, None, exc))
                continue
            actor = queued.context.get(current_actor, current_actor.get())
            for aggregate in (event, *decision.save):
                for new in aggregate.pending_events[seen if aggregate is event else 0:]:
                    if "actor" not in vars(new):
                        object.__setattr__(new, "actor", actor)
            to_save.extend(decision.save)
            for name, values in decision.save_kwargs.items():
                save_kwargs.setdefault(name, []).extend(values)
            outcomes.append((queued, decision, None))
        return outcomes, to_save, save_kwargs
