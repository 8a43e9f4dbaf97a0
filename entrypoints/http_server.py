"""``ledger serve``: the API under gunicorn (threads per worker process).

Each worker process builds its own Ledger after the fork, so no connection
or thread crosses a fork.  The modules are imported once, in the master,
before it forks (importing opens nothing): a worker starts -- or restarts
after a crash -- without importing the API again.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from ledger.config import Settings


class LedgerHTTPServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, database_url: str, *, workers: int, threads: int) -> None:
        self.settings = settings
        self.database_url = database_url
        self.threads = threads
        self.options: dict[str, object] = {
            "bind": f"{settings.http_host}:{settings.http_port}",
            "workers": workers,
            "threads": threads,
            "worker_class": "gthread",
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "graceful_timeout": 5,
            "timeout": 60,
            "keepalive": 5,
        }
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        import api.app  # noqa: F401 - shared by the forked workers, see the module doc
        import entrypoints.bootstrap  # noqa: F401

    def load(self) -> Any:
        from api.app import create_app
        from entrypoints.bootstrap import bootstrap

        threads = self.threads
        ledger = bootstrap(self.settings, url=self.database_url, pool_size=max(4, threads + 2))
        return create_app(ledger)


def serve(settings: Settings, database_url: str, *, workers: int = 2, threads: int = 8) -> None:
    LedgerHTTPServer(settings, database_url, workers=workers, threads=threads).run()
