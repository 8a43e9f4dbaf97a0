"""``ledger run``: everything in one supervised process group.

Embedded PostgreSQL and the embedded broker are started here (unless
configured externally); the API and each worker run as child processes
(``ledger serve``, ``ledger worker NAME``) pointed at them.  A child that dies
is restarted after a short back-off — every worker is restartable at any line.
Ctrl-C (SIGINT) or SIGTERM stops the children, then the servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

import click

from ledger.config import Settings

RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(self.argv, env=env, start_new_session=False)  # noqa: S603
        self.started_at = time.monotonic()


def run(settings: Settings, *, admin_token: str | None, database_url: str, workers: list[str]) -> None:
    """Start and watch the children.  ``admin_token`` is echoed on stdout only
    when given, i.e. when stdout is a terminal (see ``entrypoints.cli``); no
    token ever goes to stderr, the log stream, or a file."""
    env = dict(os.environ)
    env["LEDGER_DATABASE_URL"] = database_url
    env["LEDGER_DATA_DIR"] = str(settings.data_dir)
    env["LEDGER_SECRET_KEY"] = settings.secret_key.hex()
    broker = None
    if "relay" in workers:
        from workers.broker import bootstrap_servers, ensure_broker

        broker = ensure_broker(settings)  # None when configured or already running
        found = bootstrap_servers(settings)
        if found:
            env["LEDGER_KAFKA_BOOTSTRAP"] = found
    ledger_bin = [sys.executable, "-m", "entrypoints.cli"]
    children = [Child("api", [*ledger_bin, "serve"])]
    children += [Child(name, [*ledger_bin, "worker", name]) for name in workers]
    for child in children:
        child.start(env)

    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    click.echo(f"Ledger API:   {settings.public_url}/  (OpenAPI: {settings.public_url}/openapi.json)")
    click.echo(f"Web pages:    {settings.public_url}/app/login")
    if "LEDGER_KAFKA_BOOTSTRAP" in env:
        click.echo(f"Kafka:        {env['LEDGER_KAFKA_BOOTSTRAP']} topic {settings.kafka_topic}")
    click.echo(f"E-mails:      {settings.smtp_url or settings.outbox_dir}")
    click.echo(f"Workers:      {', '.join(workers) or 'none'}")
    if admin_token is not None:
        click.echo(f"Admin token:  {admin_token}")
    else:
        click.echo("Admin token:  not shown (stdout is not a terminal, it may be a log); "
                   "make one with `ledger token create --role admin`")
    click.echo("Press Ctrl-C to stop.")
    try:
        while not stopping:
            time.sleep(0.5)
            for child in children:
                assert child.process is not None
                code = child.process.poll()
                if code is None or stopping:
                    continue
                delay = RESTART_BACKOFF_SECONDS[min(child.restarts, len(RESTART_BACKOFF_SECONDS) - 1)]
                click.echo(f"{child.name} exited with {code}; restarting in {delay}s", err=True)
                time.sleep(delay)
                child.restarts += 1
                child.start(env)
    finally:
        for child in children:
            if child.process and child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + 10
        for child in children:
            if child.process:
                try:
                    child.process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.process.kill()
        if broker is not None:
            broker.stop()
        click.echo("stopped")
