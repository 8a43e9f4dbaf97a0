"""What every long-running worker guarantees to the supervisor.

A worker follows the notification log from a position it keeps in PostgreSQL,
and may be killed at any line: its effects and its position are written so
that a restart neither skips nor doubles an effect (each worker's module says
how).  ``run`` returns when ``stop`` is set, promptly (within about a second).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from entrypoints.bootstrap import Ledger


class Worker(Protocol):
    name: str

    def run(self, stop: threading.Event) -> None: ...


#: ``ledger worker NAME`` → the factory ``build(ledger) -> Worker`` that makes it.
WORKERS: dict[str, str] = {
    "projections": "projections.runner:build",
    "relay": "workers.relay:build",
    "notify": "workers.notify:build",
    "reconcile": "workers.reconcile:build",
}


def available() -> list[str]:
    """Workers whose module exists in this checkout."""
    names = []
    for name, target in WORKERS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            names.append(name)
    return names


def build(name: str, ledger: Ledger) -> Worker:
    module_name, _, attr = WORKERS[name].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    worker: Worker = factory(ledger)
    return worker
