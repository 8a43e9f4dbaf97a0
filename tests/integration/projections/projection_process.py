"""One projection runner in a process of its own, to be killed with SIGKILL.

    python -m tests.integration.projections.projection_process DATABASE_URL DATA_DIR BATCH MODE

MODE ``run`` follows the log like ``ledger worker projections``.  MODE
``pause`` makes every batch stop *inside* its transaction — after the view
writes, just before the tracking position is written — and print
``INSIDE <from> <to>`` first, so the test can kill it exactly mid-batch.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

from entrypoints.bootstrap import bootstrap
from ledger.config import Settings
from projections import generations
from projections.runner import ProjectionRunner


def main(argv: list[str]) -> None:
    url, data_dir, batch, mode = argv
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env({"LEDGER_DATA_DIR": data_dir, "LEDGER_SECRET_KEY": "11" * 32})
    ledger = bootstrap(settings, url=url, pool_size=3)
    if mode == "pause":
        advance = generations.advance

        def paused_advance(conn: Any, generation: int, position: int) -> None:
            active = generations.lock(conn, generation)
            assert active is not None
            print(f"INSIDE {active.position} {position}", flush=True)
            time.sleep(30)  # the test kills us here
            advance(conn, generation, position)

        generations.advance = paused_advance  # type: ignore[assignment]
    print("READY", flush=True)
    ProjectionRunner(ledger, batch_size=int(batch)).run(threading.Event())


if __name__ == "__main__":
    main(sys.argv[1:])
