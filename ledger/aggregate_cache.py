"""The aggregate cache, without ``copy.deepcopy`` on every read.

The ``eventsourcing`` repository keeps one cached instance per aggregate,
fast-forwards it with the events other writers stored since, and hands each
caller a ``deepcopy`` of it, so a command's mutations never leak into the
cache.  The deep copy was the largest single CPU cost of a registration
(12 % of it, docs/performance.md), and it grows with the event: a paid event
holds a dict entry per seat, so during a 10,000-seat rush every sale
deep-copied thousands of entries one Python call at a time.

:class:`LedgerRepository` keeps the same guarantee -- every caller gets its own
copy, and nobody ever gets an object another thread mutates -- with a cheaper
copy (:func:`copy_aggregate`):

* immutable values (str, int, bool, None, UUID, datetime …) are shared, not
  copied;
* attributes an aggregate declares in ``FLAT_STATE`` are containers of
  immutable values only (``PaidEvent.holds`` maps str to str): one C-level
  ``dict.copy()`` / ``list.copy()`` copies them completely;
* other dicts and lists are copied level by level, and anything else falls
  back to ``deepcopy``.

It also closes a race of the library's ``get``: it copies the cached
aggregate *after* releasing the fast-forward lock, so a second thread could be
fast-forwarding (mutating) the very object being copied.  Here the
fast-forward and the copy happen under the same per-aggregate lock.

A seat sale needs no copy at all (:meth:`LedgerRepository.drafting`): it
decides on a *draft* of the cached event (:func:`draft_aggregate`) whose
``FLAT_STATE`` containers are copy-on-write layers over the cached ones --
what the sale adds lives in the layer, the cached containers are only read --
so a draft costs the same for an event with ten holds as for one with ten
thousand.  The cache itself only ever holds committed state: the events are
applied to it after their commit (:meth:`LedgerRepository.apply_committed`),
and a failed save leaves it as it was.

Trusted reads.  Every sale used to ask the database first whether the event
and its organizer had moved on (:meth:`LedgerRepository.get_with`: a round
trip; sequential registrations in one process cost 55 us less of its CPU and
26 us less of PostgreSQL's without it),
and almost always nothing had.  Now each save of this process also returns
what *other* writers committed since its previous save (the save function of
migration 0017, ``LedgerRecorder.track_moves``), and the repository keeps,
for each aggregate, the version it knows to be the latest
(:meth:`LedgerRepository.read_for_sale`): after a fast-forward, after this
process's own commit; dropped when a save reports a newer one.  A sale
decides on the cached event and organizer without a query when both are
known current.  Knowing is not needed for correctness -- something may have
moved since the last report -- because the save checks what the sale decided
on: the event's next version is unique (a save decided on an old one is
refused), and the organizer, only read, is checked under the table's lock
(``ledger.application.ReadCheck``).  A refused save is decided again on a
fresh read, as any conflict; a sale refused on a trusted read (no seat) is
decided again on a fresh one before anyone is refused.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from copy import deepcopy
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, ProjectorFunction, Repository, project_aggregate

_IMMUTABLE: frozenset[type] = frozenset(
    {str, int, bool, float, type(None), bytes, UUID, datetime, date, time, timedelta, Decimal, frozenset}
)


def _copy_value(value: Any) -> Any:
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict:
        # One C-level copy, then only the values that are containers replaced
        # by their copies (an event's sessions: dicts of strings, no call per
        # string); a key that is not immutable: the whole dict deep-copied.
        copied = value.copy()
        for key, item in copied.items():
            if type(key) not in _IMMUTABLE:
                return deepcopy(value)
            if type(item) not in _IMMUTABLE:
                copied[key] = _copy_value(item)  # the same keys: safe while iterating
        return copied
    if kind is list:
        return [item if type(item) in _IMMUTABLE else _copy_value(item) for item in value]
    if kind is tuple and all(type(item) in _IMMUTABLE for item in value):
        return value
    return deepcopy(value)


def copy_aggregate(aggregate: Any) -> Any:
    """A copy of ``aggregate`` that shares nothing mutable with it (the
    contract of the library's ``deepcopy``, for the shapes aggregates here
    have: see the module docstring).  Aliasing *inside* one aggregate is not
    preserved -- no aggregate here keeps two references to one container."""
    flat: tuple[str, ...] = getattr(type(aggregate), "FLAT_STATE", ())
    state = {}
    for name, value in vars(aggregate).items():
        if name in flat and type(value) in (dict, list):
            state[name] = value.copy()
        else:
            state[name] = _copy_value(value)
    copy = object.__new__(type(aggregate))
    vars(copy).update(state)
    return copy


class DictLayer(MutableMapping[Any, Any]):
    """A dict seen through a copy-on-write layer: reads fall through to
    ``base``, writes and deletions stay in the layer, ``base`` is never
    changed.  Not a ``dict`` subclass on purpose: C code that reads a dict's
    storage directly (``json``, ``dict(x)``) would see only the layer, so it
    must fail loudly instead."""

    __slots__ = ("_fresh", "added", "base", "removed")

    def __init__(self, base: dict[Any, Any]) -> None:
        self.base = base
        self.added: dict[Any, Any] = {}
        self.removed: set[Any] = set()
        self._fresh = 0  # keys in ``added`` that ``base`` lacks

    def __getitem__(self, key: Any) -> Any:
        added = self.added
        if key in added:
            return added[key]
        if key in self.removed:
            raise KeyError(key)
        return self.base[key]

    def get(self, key: Any, default: Any = None) -> Any:
        added = self.added
        if key in added:
            return added[key]
        if key in self.removed:
            return default
        return self.base.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.added or (key not in self.removed and key in self.base)

    def _in_base(self, key: Any) -> bool:
        return key not in self.removed and key in self.base

    def __setitem__(self, key: Any, value: Any) -> None:
        if key not in self.added and not self._in_base(key):
            self._fresh += 1
        self.added[key] = value

    def __delitem__(self, key: Any) -> None:
        in_base = self._in_base(key)
        if key in self.added:
            del self.added[key]
            if not in_base:
                self._fresh -= 1
        elif not in_base:
            raise KeyError(key)
        if in_base:
            self.removed.add(key)

    def __len__(self) -> int:
        return len(self.base) - len(self.removed) + self._fresh

    def __iter__(self) -> Iterator[Any]:
        """As a dict would iterate: the base's keys in place (a changed value
        keeps its key's place), then the keys added since, in order (a key
        deleted and added again comes last, as in a dict)."""
        removed = self.removed
        for key in self.base:
            if key not in removed:
                yield key
        for key in self.added:
            if not self._in_base(key):
                yield key

    def merge_into_base(self) -> None:
        """Write the layer into ``base`` (only when nothing else changed
        ``base`` since the layer was made): ``base`` becomes what the layer
        reads, key order included."""
        base = self.base
        for key in self.removed:
            del base[key]
        base.update(self.added)


class ListLayer:
    """A list seen through an append-only layer: ``base`` is read, never
    changed; what is appended stays in the layer.  Anything but growing
    (``insert``, ``remove`` …) is not offered: it fails loudly."""

    __slots__ = ("added", "base")

    def __init__(self, base: list[Any]) -> None:
        self.base = base
        self.added: list[Any] = []

    def __contains__(self, item: object) -> bool:
        return item in self.added or item in self.base

    def __len__(self) -> int:
        return len(self.base) + len(self.added)

    def __iter__(self) -> Iterator[Any]:
        yield from self.base
        yield from self.added

    def __getitem__(self, index: int) -> Any:
        size = len(self)
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(index)
        base = len(self.base)
        return self.base[index] if index < base else self.added[index - base]

    def __eq__(self, other: object) -> bool:
        return list(self) == other

    def append(self, item: Any) -> None:
        self.added.append(item)

    def merge_into_base(self) -> None:
        """Append the layer to ``base`` (see :meth:`DictLayer.merge_into_base`)."""
        self.base.extend(self.added)


def draft_aggregate(aggregate: Any) -> Any:
    """A private version of ``aggregate`` for a command whose events are
    applied to the cache only after their commit: its ``FLAT_STATE``
    containers are :class:`DictLayer` / :class:`ListLayer` over the
    aggregate's own (O(1), whatever their size), everything else is copied as
    :func:`copy_aggregate` copies it, and it has no pending events of its
    own.  The caller must keep the aggregate from being fast-forwarded while
    the draft is read (:meth:`LedgerRepository.drafting`), and must never
    cache the draft."""
    flat: tuple[str, ...] = getattr(type(aggregate), "FLAT_STATE", ())
    state = vars(aggregate).copy()  # immutable values shared as they are
    for name, value in state.items():  # (only values replaced: safe while iterating)
        kind = type(value)
        if kind in _IMMUTABLE:
            continue
        if name in flat and kind is dict:
            state[name] = DictLayer(value)
        elif name in flat and kind is list:
            state[name] = ListLayer(value)
        else:
            state[name] = _copy_value(value)
    state["_pending_events"] = []
    draft = object.__new__(type(aggregate))
    vars(draft).update(state)
    return draft


def apply_events(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's ``project_aggregate`` -- each event's ``mutate`` in turn,
    each checking that the event is the aggregate's next -- without its
    ``assert isinstance(event, CanMutateProtocol)`` per event: an isinstance
    against a runtime-checkable ``Protocol`` walks the protocol's members
    every time, and cost three times the ``mutate`` it guards (12 µs of
    16 µs per event).  Every fast-forward and rebuild here applies events
    with it; an event without ``mutate`` still fails, on the call."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def plain_aggregate(aggregate: Any) -> Any:
    """``aggregate`` itself, or for a draft (:func:`draft_aggregate`) a
    shallow copy whose layered containers are the plain ``dict`` / ``list``
    they read as -- what the library's ``Snapshot.take`` can encode."""
    state = vars(aggregate)
    if not any(type(value) in (DictLayer, ListLayer) for value in state.values()):
        return aggregate
    plain = object.__new__(type(aggregate))
    vars(plain).update({name: dict(value) if type(value) is DictLayer else list(value) if type(value) is ListLayer
                        else value for name, value in state.items()})
    return plain


log = logging.getLogger(__name__)

#: Aggregates whose latest version is remembered (trusted reads), at most.
_LATEST_LIMIT = 100_000


class LedgerRepository(Repository[UUID]):
    """The library's repository with :func:`copy_aggregate` instead of
    ``deepcopy``, fast-forward and copy under one lock.  Without a cache, or
    for an older version, it is the library's own ``get``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fastforward_users: dict[UUID, list[Any]] = {}
        #: Trusted reads (see the module doc): aggregate id -> the version
        #: this process knows to be the latest.
        self._latest: dict[UUID, int] = {}
        #: The recorder whose saves report what moved, once trusting began (``None`` before).
        self._reports: Any = None  # a LedgerRecorder (not imported: it imports this module)
        self.trusted_reads = 0  # sales decided without a read

    def _start_trusting(self) -> bool:
        """Once: have the recorder's saves report what moved (only with a
        cache and the save function of migration 0017)."""
        if self._reports is not None:
            return True
        recorder = self.event_store.recorder
        track = getattr(recorder, "track_moves", None)
        if self.cache is None or not self.fastforward or track is None or not track():
            return False
        recorder.on_moves = self._moved  # type: ignore[attr-defined]
        recorder.on_written = self._written  # type: ignore[attr-defined]
        self._reports = recorder
        return True

    def _moved(self, moves: list[Any] | None) -> None:
        """A save's report of the events other writers committed since this
        process's previous save (stored events, in commit order; ``None``:
        too many to list -- nothing is known current any more).  Each cached
        aggregate they continue is brought up to date with them -- known
        current still, if it was -- so its next sale needs no read; one they
        do not continue (the cache is older) is read again before a sale.
        Never raises: the save it reports on has committed, and its callers
        must hear so; an event that cannot be applied here (a type of a newer
        release, during a rollout) leaves its aggregate to be read.
        Runs in the saving thread, before its callers are told the save is
        done: a few events per save, each applied at less cost than the query
        it spares the next sale (docs/performance.md, "Sessions 6 and 7")."""
        latest = self._latest
        if moves is None:
            latest.clear()
            return
        # Only the aggregates known current are brought up to date: any other
        # (most moved events are other processes' new registrations) is read
        # before its next sale anyway.
        by_aggregate: dict[UUID, list[Any]] = {}
        for stored in moves:
            if stored.originator_id in latest:
                by_aggregate.setdefault(stored.originator_id, []).append(stored)
        for aggregate_id, stored_events in by_aggregate.items():
            try:
                self._apply_moves(aggregate_id, stored_events)
            except Exception:  # e.g. an event type of a newer release: rebuilt by its next read
                latest.pop(aggregate_id, None)
                self._evict(aggregate_id)
                log.warning("could not apply another writer's events to cached aggregate %s; it will be read",
                            aggregate_id, exc_info=True)

    def _evict(self, aggregate_id: UUID) -> None:
        """Drop a cached aggregate a failed update may have left half-changed."""
        assert self.cache is not None
        lock = self._use_fastforward_lock(aggregate_id)
        try:
            with lock:
                try:
                    self.cache.get(aggregate_id, evict=True)
                except KeyError:
                    pass
        finally:
            self._disuse_fastforward_lock(aggregate_id)

    def _written(self, stored_events: Sequence[Any]) -> None:
        """This process committed these events: the aggregates they belong to
        are not known current until read or, for a sale's event, until
        :meth:`apply_committed` (called after this) brings the cache to them.
        Another command's save of an event (a payment, a cancellation)
        leaves the cached event behind; trusted, it would make the next sale
        conflict."""
        latest = self._latest
        for stored in stored_events:
            latest.pop(stored.originator_id, None)

    def _apply_moves(self, aggregate_id: UUID, stored_events: list[Any]) -> None:
        assert self.cache is not None
        latest = self._latest
        lock = self._use_fastforward_lock(aggregate_id)
        try:
            with lock:
                try:
                    cached = self.cache.get(aggregate_id)
                except KeyError:
                    latest.pop(aggregate_id, None)
                    return
                known = latest.get(aggregate_id) == cached.version
                newer = [s for s in stored_events if s.originator_version > cached.version]
                if not newer:
                    return
                if newer[0].originator_version != cached.version + 1:
                    latest.pop(aggregate_id, None)  # a gap: the next sale reads it
                    return
                to_domain_event = self.event_store.mapper.to_domain_event
                apply_events(cached, [to_domain_event(s) for s in newer])
                if known:
                    latest[aggregate_id] = cached.version
                else:
                    latest.pop(aggregate_id, None)
        finally:
            self._disuse_fastforward_lock(aggregate_id)

    def _known_current(self, aggregate_id: UUID, version: int) -> None:
        """``aggregate_id`` at ``version`` holds every event committed so far."""
        if self._reports is not None:
            latest = self._latest
            if len(latest) >= _LATEST_LIMIT:  # ids of aggregates long evicted: start over
                latest.clear()
            latest[aggregate_id] = version

    def read_for_sale(self, aggregate_id: UUID, other_of: Callable[[Any], UUID], *,
                      fresh: bool) -> tuple[Any, Any, bool]:
        """``get_with(aggregate_id, other_of, copy=False)`` for a sale, and
        whether it came from the cache without a query: only when not
        ``fresh`` and both cached aggregates are known current.  The caller
        then has its save check what it only read
        (``ledger.application.ReadCheck``) and decides again on a fresh read
        before refusing anything."""
        cache = self.cache
        if not fresh and cache is not None and self._start_trusting() and self._reports.moves_recent():
            try:
                first = cache.get(aggregate_id)
                other_id = other_of(first)
                second = cache.get(other_id)
            except KeyError:
                pass
            else:
                latest = self._latest
                if latest.get(aggregate_id) == first.version and latest.get(other_id) == second.version:
                    self.trusted_reads += 1
                    return first, second, True
        aggregate, other = self.get_with(aggregate_id, other_of, copy=False)
        return aggregate, other, False

    # The library keeps idle locks in an LRU cache (its own lock, its own
    # bookkeeping): ~4 % of a registration's CPU for its three or four uses.
    # A lock nobody uses needs no keeping -- nobody can be holding it -- so
    # here a lock lives exactly as long as it has users.
    def _use_fastforward_lock(self, aggregate_id: UUID) -> Any:
        with self._fastforward_locks_lock:
            entry = self._fastforward_users.get(aggregate_id)
            if entry is None:
                entry = self._fastforward_users[aggregate_id] = [threading.Lock(), 0]
            entry[1] += 1
            return entry[0]

    def _disuse_fastforward_lock(self, aggregate_id: UUID) -> None:
        with self._fastforward_locks_lock:
            entry = self._fastforward_users[aggregate_id]
            entry[1] -= 1
            if not entry[1]:
                del self._fastforward_users[aggregate_id]

    def get(  # type: ignore[override]  # same parameters, one generic type
        self, aggregate_id: UUID, *, version: int | None = None,
        projector_func: ProjectorFunction[Any, Any] = apply_events,
        fastforward_skipping: bool = False, deepcopy_from_cache: bool = True,
    ) -> Any:
        """``deepcopy_from_cache=False`` returns the cached instance itself:
        only for a caller that reads one attribute and keeps nothing (e.g.
        an organizer's ``plan_size``); it may be fast-forwarded by another
        thread right after.  The library's ``project_aggregate`` is replaced
        by its equivalent :func:`apply_events`."""
        if projector_func is project_aggregate:
            projector_func = apply_events
        if version is not None or self.cache is None or not self.fastforward:
            return super().get(
                aggregate_id, version=version, projector_func=projector_func,
                fastforward_skipping=fastforward_skipping, deepcopy_from_cache=deepcopy_from_cache,
            )
        lock = self._use_fastforward_lock(aggregate_id)
        try:
            with lock:
                aggregate: Any
                try:
                    aggregate = self.cache.get(aggregate_id)
                except KeyError:
                    aggregate = self._reconstruct_aggregate(aggregate_id, None, projector_func)
                    self.cache.put(aggregate_id, aggregate)
                else:
                    new_events = self.event_store.get(originator_id=aggregate_id, gt=aggregate.version)
                    aggregate = projector_func(aggregate, cast(Any, new_events))
                    if aggregate is None:
                        raise AggregateNotFoundError(aggregate_id)
                if deepcopy_from_cache and self.deepcopy_from_cache:
                    return copy_aggregate(aggregate)
                return aggregate
        finally:
            self._disuse_fastforward_lock(aggregate_id)

    def get_with(self, aggregate_id: UUID, other_of: Callable[[Any], UUID], *, copy: bool = True) -> tuple[Any, Any]:
        """``(aggregate, other)``: a copy of the aggregate, as :meth:`get`
        returns it (with ``copy=False`` the cached instance itself, for
        :meth:`drafting`), and the cached instance of the aggregate it names
        (``other_of(aggregate)``, e.g. a paid event's organizer) *without a
        copy* -- for a caller that reads an attribute or two of it and keeps
        nothing, like ``get(..., deepcopy_from_cache=False)``.

        Both are fast-forwarded by ONE query (``select_events_after``): a
        sale needs the event and its organizer's plan, each as current as
        the database, and reading them in one round trip instead of two
        keeps the guarantee of two reads: each returned aggregate holds every
        event committed before the query, from any process.

        The query runs without any lock (every sale of a process shares one
        organizer: holding its lock through a round trip made them take
        turns).  Only the rows newer than the cached instance are decoded; then,
        under each aggregate's fast-forward lock in turn, only the fetched
        events newer than the cached version are applied -- the
        cache may have moved on meanwhile, never backwards, and a store's
        versions have no gaps, so what is applied always follows on.  When
        either is not cached yet, or the store cannot fast-forward several at
        once, it is two ordinary reads."""
        select_after = getattr(self.event_store.recorder, "select_events_after", None)
        cache = self.cache
        if cache is None or not self.fastforward or select_after is None:
            aggregate = self.get(aggregate_id, deepcopy_from_cache=copy)
            return aggregate, self.get(other_of(aggregate), deepcopy_from_cache=False)
        try:
            first = cache.get(aggregate_id)
            other_id = other_of(first)  # the link never changes: read without the lock
            second = cache.get(other_id)
        except KeyError:
            aggregate = self.get(aggregate_id, deepcopy_from_cache=copy)
            return aggregate, self.get(other_of(aggregate), deepcopy_from_cache=False)
        if other_id == aggregate_id:
            aggregate = self.get(aggregate_id, deepcopy_from_cache=copy)
            return aggregate, self.get(other_id, deepcopy_from_cache=False)
        new_events: dict[UUID, list[Any]] = {aggregate_id: [], other_id: []}
        seen = {aggregate_id: first, other_id: second}
        to_domain_event = self.event_store.mapper.to_domain_event
        for stored in select_after([(aggregate_id, first.version), (other_id, second.version)]):
            if stored.originator_version <= seen[stored.originator_id].version:
                continue  # another thread applied it meanwhile: ``_catch_up`` would skip it, undecoded
            new_events[stored.originator_id].append(to_domain_event(stored))
        aggregate = self._catch_up(aggregate_id, new_events[aggregate_id], first,
                                   copy=copy and self.deepcopy_from_cache)
        other = self._catch_up(other_id, new_events[other_id], second, copy=False)
        if self._reports is not None:
            self._known_current(aggregate_id, aggregate.version)
            self._known_current(other_id, other.version)
        return aggregate, other

    def _catch_up(self, aggregate_id: UUID, events: list[Any], seen: Any, *, copy: bool) -> Any:
        """The cached aggregate with ``events`` (fetched without the lock)
        applied where they are newer than it; with ``copy``, a copy of it
        taken under the lock (as :meth:`get` does).  ``seen``: the cached
        instance whose version the query started from."""
        assert self.cache is not None
        if not events and not copy:
            # Nothing to apply, nothing to copy: the instance the query
            # started from, as it is -- the query found nothing newer, so it
            # holds every event committed before the query (a cache only moves
            # on: it may hold more by now, never less).  Another instance may
            # have replaced it in the cache meanwhile (``remember``): a draft
            # on this one then finds it is not the cached instance any more,
            # and ``apply_committed`` applies the events instead of merging.
            return seen
        lock = self._use_fastforward_lock(aggregate_id)
        try:
            with lock:
                try:
                    aggregate = self.cache.get(aggregate_id)
                except KeyError:  # evicted meanwhile: rebuilt, current by construction
                    aggregate = self._reconstruct_aggregate(aggregate_id, None, apply_events)
                    self.cache.put(aggregate_id, aggregate)
                newer = [event for event in events if event.originator_version > aggregate.version]
                if newer and apply_events(aggregate, newer) is None:
                    raise AggregateNotFoundError(aggregate_id)
                return copy_aggregate(aggregate) if copy else aggregate
        finally:
            self._disuse_fastforward_lock(aggregate_id)

    def remember(self, aggregate: Any) -> None:
        """Put a just-saved aggregate in the cache, so the next read need not
        fast-forward through the events it just wrote.  The caller must
        never touch ``aggregate`` again.  Kept only when it is newer than
        the cached one (another thread may have fast-forwarded further)."""
        if self.cache is None:
            return
        lock = self._use_fastforward_lock(aggregate.id)
        try:
            with lock:
                try:
                    cached = self.cache.get(aggregate.id)
                except KeyError:
                    cached = None
                if cached is None or cached.version < aggregate.version:
                    self.cache.put(aggregate.id, aggregate)
        finally:
            self._disuse_fastforward_lock(aggregate.id)

    def drafting(self, aggregate: Any) -> _Drafting:
        """A draft of ``aggregate`` (:func:`draft_aggregate`) -- typically
        the cached instance ``get_with(..., copy=False)`` returned -- to be
        read and changed inside the ``with``, while the aggregate's
        fast-forward lock keeps any other thread from changing what the
        draft reads through.  Nothing reaches the cache: after the save
        commits, :meth:`apply_committed` brings the cached instance up to
        date."""
        return _Drafting(self, aggregate)

    def apply_committed(self, aggregate_id: UUID, events: list[Any], *, draft: Any = None,
                        origin: Any = None) -> None:
        """Apply ``events`` -- committed, in version order -- to the cached
        aggregate where they follow on from it, so the next read need not
        fetch what this process just wrote.  Events it already has (another
        thread fast-forwarded past them) are skipped; when they do not follow
        on (the cache was rebuilt from an older read), nothing is applied and
        the next read fast-forwards from the database as always.

        With the ``draft`` that made the events and the aggregate it was
        drafted on (``origin``): when that is still the cached instance at
        the version the draft started from -- nothing changed it since --
        the draft's state is merged into it (its layers written into the
        cached containers, its other attributes adopted) instead of running
        every event's mutator again: the same state, cheaper."""
        if self.cache is None or not events:
            return
        lock = self._use_fastforward_lock(aggregate_id)
        try:
            with lock:
                try:
                    cached = self.cache.get(aggregate_id)
                except KeyError:
                    return
                start = events[0].originator_version - 1
                if draft is not None and cached is origin and cached.version == start and draft.version == (
                    events[-1].originator_version
                ) and _merge_draft(cached, draft):
                    pass
                else:
                    newer = [event for event in events if event.originator_version > cached.version]
                    if newer and newer[0].originator_version == cached.version + 1:
                        apply_events(cached, newer)
                if self._reports is not None and cached.version == events[-1].originator_version:
                    # Committed on top of ``start``: no one else wrote in between (the
                    # versions are unique), so this is the latest, as of the commit.
                    self._known_current(aggregate_id, cached.version)
        finally:
            self._disuse_fastforward_lock(aggregate_id)


class _Drafting:
    """:meth:`LedgerRepository.drafting`'s ``with``: the lock taken and the
    draft made on entry, the lock given back on exit (a class, not a
    ``@contextmanager`` generator: a third of the cost, on every sale)."""

    __slots__ = ("_aggregate", "_lock", "_repository")

    def __init__(self, repository: LedgerRepository, aggregate: Any) -> None:
        self._repository = repository
        self._aggregate = aggregate
        self._lock: Any = None

    def __enter__(self) -> Any:
        aggregate_id = self._aggregate.id
        lock = self._repository._use_fastforward_lock(aggregate_id)
        try:
            lock.acquire()
            try:
                draft = draft_aggregate(self._aggregate)
            except BaseException:
                lock.release()
                raise
        except BaseException:
            self._repository._disuse_fastforward_lock(aggregate_id)
            raise
        self._lock = lock
        return draft

    def __exit__(self, *exc_info: object) -> None:
        try:
            self._lock.release()
        finally:
            self._repository._disuse_fastforward_lock(self._aggregate.id)


def _merge_draft(aggregate: Any, draft: Any) -> bool:
    """Make ``aggregate`` what its ``draft`` reads (see
    :meth:`LedgerRepository.apply_committed`); false, and nothing changed,
    when the draft's layers are not over this aggregate's containers."""
    state, drafted = vars(aggregate), vars(draft)
    layers: list[tuple[str, Any]] = []
    for name in getattr(type(aggregate), "FLAT_STATE", ()):  # the only names a draft layers
        value = drafted.get(name)
        kind = type(value)
        if kind is DictLayer or kind is ListLayer:
            if state.get(name) is not value.base:
                return False
            layers.append((name, value))
    pending = state["_pending_events"]
    state.update(drafted)  # immutable values shared, copied ones adopted
    state["_pending_events"] = pending
    for name, layer in layers:
        layer.merge_into_base()
        state[name] = layer.base
    return True
