"""How ``ledger serve``'s worker processes share connections and CPUs:
gunicorn's options for both (:func:`gunicorn_options`), used by the ledger's
server and by the benchmark's trivial server alike.

**Even connections.**  A new connection is accepted by the worker holding the
fewest open connections (:class:`EvenThreadWorker`).  The workers share one
listening socket, and each keeps its count of open connections in a small
shared array; a worker that holds more than another live worker stops
listening until that changes.  Why: with gunicorn's shared socket as it is,
the first worker awake accepts, so keep-alive connections opened together (a
load balancer's upstream pool, a benchmark's clients) landed mostly in one
worker -- 16/0 and 14/2 of 16 were seen -- whose GIL then bounded the server
while the other idled; a socket per worker (``SO_REUSEPORT``, session 7)
spread them by a hash of their addresses, which still gave 12/4 in one draw
of five -- and with ``--pin-workers`` the loaded worker's CPU then bounded
the server (0.262× against 0.313× at 8/8 in one run of ``bench/commands.py``).
A worker that dies leaves nothing behind: the master marks its slot empty
(``child_exit``) and its replacement starts from nothing.

**A CPU per worker** (``--pin-workers``, :func:`_cpu_hooks`).  A worker's
threads share one GIL, so the process never runs Python on more than one CPU
at a time, yet every hand-over of the GIL (a request thread back from
PostgreSQL or the socket, a follower of the group commit woken) woke a thread
on whichever CPU the scheduler chose -- a wake-up across CPUs, with cold
caches, many times per request.  Measured on 2 cores (docs/performance.md,
"Session 8"): registrations +13 %, the trivial endpoint +9 %.  Opt-in: it is
right when one server owns the machine's CPUs; two servers on one host, each
pinning, would stack their first workers on the same CPU.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

#: A slot no live worker holds.
_EMPTY = -1
#: Slots in the shared array: workers beyond it (``TTIN`` past this many)
#: accept without being counted by the others.
_SLOTS = 64


class EvenThreadWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker that listens for new connections only while
    no other live worker of its server holds fewer open connections (ties:
    both listen, and the first awake accepts)."""

    #: Open connections per worker slot, shared by the master and its workers
    #: (set on the class by :func:`gunicorn_options`, before any fork).
    counts: Any = None
    #: This worker's slot (chosen by the master before the fork).
    slot: int | None = None

    @property
    def nr_conns(self) -> int:
        """gunicorn's own count of this worker's open connections, mirrored
        into the worker's slot every time gunicorn changes it."""
        return int(self.__dict__.get("_open", 0))

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self.__dict__["_open"] = value
        if self.slot is not None and self.counts is not None:
            self.counts[self.slot] = value

    def run(self) -> None:
        """Counted from when it listens: the master leaves a new worker's
        slot empty, so a worker still starting (importing, connecting) is
        not taken for the least loaded one while it cannot accept yet."""
        self.nr_conns = self.nr_conns
        super().run()

    def set_accept_enabled(self, enabled: bool) -> None:
        """gunicorn calls this (with "below its connection limit") whenever
        that differs from whether the worker listens -- so on every turn of
        its loop while this worker is held back: listen only while also
        least loaded."""
        super().set_accept_enabled(enabled and self.least_loaded())

    def least_loaded(self) -> bool:
        counts, mine = self.counts, self.nr_conns
        if counts is None:
            return True
        return all(count == _EMPTY or mine <= count for i, count in enumerate(counts) if i != self.slot)

    def accept(self, listener: Any) -> None:
        """One connection, then the loop asks again whether to listen (the
        workers share the socket: another one may be awake for the same
        connection, and gets nothing -- gunicorn ignores that)."""
        super().accept(listener)
        self.set_accept_enabled(self.nr_conns < self.worker_connections)


def gunicorn_options(workers: int, *, pin_workers: bool = False) -> dict[str, Any]:
    """The worker class, the shared socket and the master's hooks: a slot
    per worker (and, pinning, a CPU per worker) chosen before each fork, the
    slot emptied when the worker is gone."""
    counts = multiprocessing.RawArray(ctypes.c_long, [_EMPTY] * _SLOTS)
    EvenThreadWorker.counts = counts
    cpus = sorted(os.sched_getaffinity(0))
    pin = pin_workers and workers <= len(cpus)  # more workers than CPUs: the scheduler spreads them better

    def pre_fork(server: Any, worker: Any) -> None:  # in the master
        live = server.WORKERS.values()
        taken = {getattr(other, "slot", None) for other in live}
        worker.slot = next((i for i in range(_SLOTS) if i not in taken), None)  # counted once it runs
        if pin:
            cpus_taken = {getattr(other, "ledger_cpu", None) for other in live}
            worker.ledger_cpu = next((cpu for cpu in cpus if cpu not in cpus_taken), cpus[0])

    def post_fork(server: Any, worker: Any) -> None:  # in the new worker, before it starts a thread
        if pin:
            os.sched_setaffinity(0, {worker.ledger_cpu})

    def child_exit(server: Any, worker: Any) -> None:  # in the master, once the worker is gone
        if getattr(worker, "slot", None) is not None:
            counts[worker.slot] = _EMPTY

    return {"worker_class": EvenThreadWorker, "reuse_port": False,
            "pre_fork": pre_fork, "post_fork": post_fork, "child_exit": child_exit}
