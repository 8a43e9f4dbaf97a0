"""The hand-over of a queue of sleeping callers, shared by the recorder's
group commit (``ledger.application``) and the sales lanes
(``ledger.sales_batch``).

Each caller sleeps on its own lock (:func:`sleeping_lock`), taken when it
queues.  When a leader finishes, it settles whatever its run left unsettled,
hands the lead to the queue's next caller and wakes the callers it served --
each released exactly once, and no one else (a shared condition's
``notify_all`` woke every sleeper, each only to sleep again)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Protocol


class Sleeper(Protocol):
    done: bool
    error: BaseException | None
    wake: Any


def sleeping_lock() -> Any:
    """A lock already taken: its owner's ``acquire`` sleeps until another thread releases it."""
    lock = threading.Lock()
    lock.acquire()
    return lock


def settle_unsettled(served: Iterable[Sleeper], why: str) -> None:
    """Never leave a caller asleep unsettled: any the run did not settle gets an error."""
    for sleeper in served:
        if not sleeper.done:
            sleeper.error, sleeper.done = RuntimeError(why), True


def wake(following: Sleeper | None, woken: Iterable[Sleeper]) -> None:
    """The lead to ``following`` (if any), then the served callers, each once."""
    if following is not None:
        following.wake.release()
    for sleeper in woken:
        sleeper.wake.release()
