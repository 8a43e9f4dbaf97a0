"""Every long-running worker, by the name ``ledger worker NAME`` takes.

An explicit list in the composition root: a misspelt module fails at once.
Factories are imported on use, so that ``ledger worker relay`` does not load
the notify worker's SMTP code (and the other way round).
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.container import Ledger
from workers.base import Worker

#: Every worker, in the order ``ledger run`` starts them.
WORKERS: tuple[str, ...] = ("projections", "relay", "notify", "reconcile", "sealer")


def _factory(name: str) -> Callable[[Ledger], Worker]:
    if name == "projections":
        from projections import runner

        return runner.build
    if name == "relay":
        from workers import relay

        return relay.build
    if name == "notify":
        from workers import notify

        return notify.build
    if name == "reconcile":
        from workers import reconcile

        return reconcile.build
    if name == "sealer":
        from ledger.proof import sealer

        return sealer.build
    raise KeyError(f"unknown worker {name!r}; choose from {', '.join(WORKERS)}")


def build(name: str, ledger: Ledger) -> Worker:
    """The worker ``name`` wired to ``ledger``."""
    return _factory(name)(ledger)
