"""``ledger serve``: the API under gunicorn (threads per worker process).

Each worker process builds its own Ledger after the fork, so no connection
or thread crosses a fork.

How the workers share connections and CPUs (``--pin-workers``):
:mod:`entrypoints.even_workers`.  Since a second server could then listen on
the same port unnoticed (a shared socket inherited, or another
``SO_REUSEPORT`` one), ``serve`` first checks that no one else does: a
second server started on a taken port refuses to start instead of silently
sharing its traffic.  The modules are imported once, in the master, before it
forks (importing opens nothing): a worker starts -- or restarts after a
crash -- without importing the API again.
"""

from __future__ import annotations

import errno
import socket
from typing import Any

from gunicorn.app.base import BaseApplication

from entrypoints.even_workers import gunicorn_options
from ledger.config import Settings


class LedgerHTTPServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, database_url: str, *, workers: int, threads: int,
                 pin_workers: bool = False) -> None:
        self.settings = settings
        self.database_url = database_url
        self.threads = threads
        self.options: dict[str, object] = {
            "bind": f"{settings.http_host}:{settings.http_port}",
            "workers": workers,
            "threads": threads,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "graceful_timeout": 5,
            "timeout": 60,
            "keepalive": 5,
            **gunicorn_options(workers, pin_workers=pin_workers),  # see entrypoints/even_workers.py
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


class PortInUse(Exception):
    """Someone already listens on the address the server was told to use."""


def refuse_taken_port(host: str, port: int) -> None:
    """Raise ``PortInUse`` when a socket already listens on ``host:port``.

    A plain bind (``SO_REUSEADDR``, as gunicorn binds, so connections of an
    earlier run left in TIME_WAIT do not count; no ``SO_REUSEPORT``) fails
    while any socket listens there, ``SO_REUSEPORT`` ones included."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(f"{host}:{port} is already in use (another ledger server?)") from exc
            raise


def serve(settings: Settings, database_url: str, *, workers: int = 2, threads: int = 8,
          pin_workers: bool = False) -> None:
    refuse_taken_port(settings.http_host, settings.http_port)
    LedgerHTTPServer(settings, database_url, workers=workers, threads=threads, pin_workers=pin_workers).run()
