"""The ``ledger`` console script: one entry point for every process."""

from __future__ import annotations

import logging
import sys
import threading

import click

from ledger.config import Settings


def _settings() -> Settings:
    return Settings.from_env()


@click.group()
def main() -> None:
    """Event-sourced payment ledger for paid webinars."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


@main.command()
def run() -> None:
    """Embedded PostgreSQL and broker, the API and every worker; Ctrl-C stops all."""
    from entrypoints.bootstrap import bootstrap
    from entrypoints.supervisor import run as supervise
    from entrypoints.worker_registry import WORKERS
    from ledger import api_tokens

    settings = _settings()
    ledger = bootstrap(settings)
    token = api_tokens.create_token(ledger.db, role="admin", label="ledger run")
    url = ledger.database_url
    ledger.close()
    supervise(settings, admin_token=token, database_url=url, workers=list(WORKERS))


@main.command()
@click.option("--workers", default=2, show_default=True, help="worker processes")
@click.option("--threads", default=8, show_default=True, help="threads per worker process")
def serve(workers: int, threads: int) -> None:
    """The HTTP API only."""
    from entrypoints.bootstrap import database_url
    from entrypoints.http_server import serve as run_server

    settings = _settings()
    run_server(settings, database_url(settings), workers=workers, threads=threads)


@main.command()
@click.argument("name")
def worker(name: str) -> None:
    """One worker: projections, relay, notify or reconcile."""
    import signal

    from entrypoints.bootstrap import bootstrap
    from entrypoints.worker_registry import WORKERS, build
    from ledger.actor import current_actor

    if name not in WORKERS:
        raise click.BadParameter(f"unknown worker {name!r}; choose from {', '.join(WORKERS)}")
    settings = _settings()
    broker = None
    if name == "relay":  # standalone: bring the embedded broker unless one is configured or running
        from workers.broker import ensure_broker

        broker = ensure_broker(settings)
    ledger = bootstrap(settings)
    current_actor.set(f"worker:{name}")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        build(name, ledger).run(stop)
    finally:
        ledger.close()
        if broker is not None:
            broker.stop()


@main.group()
def token() -> None:
    """API tokens."""


@token.command("create")
@click.option("--role", type=click.Choice(["admin", "finance", "organizer"]), required=True)
@click.option("--organizer", "organizer_id", default=None, help="organizer id (organizer role)")
@click.option("--label", default="", help="a note to recognise the token by")
def token_create(role: str, organizer_id: str | None, label: str) -> None:
    """Print a new token alone on stdout (only its hash is kept)."""
    from entrypoints.bootstrap import bootstrap
    from ledger import api_tokens
    from ledger.errors import LedgerError

    ledger = bootstrap(_settings())
    try:
        if role == "organizer":
            ledger.service.organizer(organizer_id or "")
        click.echo(api_tokens.create_token(ledger.db, role=role, organizer_id=organizer_id, label=label))
    except LedgerError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(2)
    finally:
        ledger.close()


def _register_component_commands() -> None:
    """Commands kept in their own modules (rebuild, reports, tail, status)."""
    from entrypoints import cli_status, cli_views

    cli_views.register(main)
    cli_status.register(main)


_register_component_commands()

if __name__ == "__main__":
    main()
