"""What every long-running worker guarantees to the supervisor.

A worker follows the notification log from a position it keeps in PostgreSQL,
and may be killed at any line: its effects and its position are written so
that a restart neither skips nor doubles an effect (each worker's module says
how).  ``run`` returns when ``stop`` is set, promptly (within about a second).
Workers are listed, by name, in ``entrypoints/worker_registry.py``.
"""

from __future__ import annotations

import threading
from typing import Protocol


class Worker(Protocol):
    name: str

    def run(self, stop: threading.Event) -> None: ...
