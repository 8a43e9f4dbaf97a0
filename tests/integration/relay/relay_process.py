"""One relay in a process of its own, to be killed with SIGKILL by the tests.

    python -m tests.integration.relay.relay_process DATABASE_URL DATA_DIR TOPIC BOOTSTRAP BATCH
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from entrypoints.bootstrap import bootstrap
from ledger.config import Settings
from workers.relay import RelayOptions, RelayWorker


def main(argv: list[str]) -> None:
    url, data_dir, topic, broker, batch = argv
    logging.basicConfig(level=logging.WARNING)
    settings = Settings.from_env({
        "LEDGER_DATA_DIR": data_dir, "LEDGER_SECRET_KEY": "11" * 32,
        "LEDGER_KAFKA_TOPIC": topic, "LEDGER_KAFKA_BOOTSTRAP": broker,
    })
    ledger = bootstrap(settings, url=url, pool_size=2)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    options = RelayOptions(batch_size=int(batch), max_in_flight=4, check_interval=0.5, backoff_max=0.5)
    RelayWorker(ledger, options).run(stop)


if __name__ == "__main__":
    main(sys.argv[1:])
