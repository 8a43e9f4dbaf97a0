"""``ledger serve``: the API under gunicorn (threads per worker process).

Each worker process builds its own Ledger after the fork, so no connection
or thread crosses a fork.

Each worker listens on a socket of its own (``SO_REUSEPORT``), and the kernel
spreads new connections across them by a hash of the connection's addresses.
Why: with gunicorn's one shared listening socket, the first worker awake
accepts, so keep-alive connections opened together (a load balancer's
upstream pool, a benchmark's clients) landed mostly in one worker -- 16/0 and
14/2 of 16 were seen -- whose GIL then bounded the server while the other
idled.  Since several processes may then listen on one port, ``serve`` first
checks that no one else does: a second server started on a taken port
refuses to start instead of silently sharing its traffic.  The modules are imported once, in the master,
before it forks (importing opens nothing): a worker starts -- or restarts
after a crash -- without importing the API again.

``--pin-workers`` keeps each worker process on a CPU of its own
(:func:`worker_cpu_hooks`).  Why: a worker's threads share one GIL, so the
process never runs Python on more than one CPU at a time, yet every hand-over
of the GIL (a request thread back from PostgreSQL or the socket, a follower
of the group commit woken) woke a thread on whichever CPU the scheduler
chose -- a wake-up across CPUs, with cold caches, many times per request.
Measured on 2 cores (docs/performance.md, "Session 8"): registrations +13 %,
the trivial endpoint +9 %.  Opt-in: it is right when one server owns the
machine's CPUs; two servers on one host, each pinning, would stack their
first workers on the same CPU.
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

from gunicorn.app.base import BaseApplication

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
            "worker_class": "gthread",
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "graceful_timeout": 5,
            "timeout": 60,
            "keepalive": 5,
            "reuse_port": True,  # a listening socket per worker: see the module's docstring
            **(worker_cpu_hooks(workers) if pin_workers else {}),
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


def worker_cpu_hooks(workers: int) -> dict[str, Any]:
    """gunicorn's ``pre_fork``/``post_fork`` hooks that give each worker
    process one CPU of this process's allowed set, a different one each (a
    worker started again after a crash gets the CPU its predecessor freed);
    none when there are more workers than CPUs -- the scheduler spreads them
    better than a shared pin would.  The CPU is set in the new process before
    it starts any thread, so every thread of the worker inherits it."""
    cpus = sorted(os.sched_getaffinity(0))
    if workers > len(cpus):
        return {}

    def pre_fork(server: Any, worker: Any) -> None:  # in the master: choose
        taken = {getattr(other, "ledger_cpu", None) for other in server.WORKERS.values()}
        worker.ledger_cpu = next((cpu for cpu in cpus if cpu not in taken), cpus[0])

    def post_fork(server: Any, worker: Any) -> None:  # in the worker: apply
        os.sched_setaffinity(0, {worker.ledger_cpu})

    return {"pre_fork": pre_fork, "post_fork": post_fork}


class PortInUse(Exception):
    """Someone already listens on the address the server was told to use."""


def refuse_taken_port(host: str, port: int) -> None:
    """Raise ``PortInUse`` when a socket already listens on ``host:port``.

    A plain bind (``SO_REUSEADDR``, as gunicorn binds, so connections of an
    earlier run left in TIME_WAIT do not count; no ``SO_REUSEPORT``) fails
    while any socket listens there, a running ledger server's workers
    included -- the check their own ``SO_REUSEPORT`` binds no longer make."""
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
