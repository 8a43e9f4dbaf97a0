"""The ``ledger`` console script: one entry point for every process."""

from __future__ import annotations

import logging
import sys
import threading
from typing import NoReturn

import click

from ledger.config import Settings


def _settings() -> Settings:
    return Settings.from_env()


class LedgerGroup(click.Group):
    """Exit codes for every command: 0 ok, 1 a domain error or a failure, 2 a
    usage error -- a wrong option, or a wrong ``LEDGER_*`` variable (the
    environment is part of how the command was called)."""

    def invoke(self, ctx: click.Context) -> object:
        from ledger.config import ConfigurationError
        from ledger.errors import LedgerError

        try:
            return super().invoke(ctx)
        except ConfigurationError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except LedgerError as exc:
            click.echo(f"error: {exc.detail}", err=True)
            ctx.exit(1)


def fail(message: str) -> NoReturn:
    """A command could not do its work: say why on stderr, exit 1."""
    click.echo(f"error: {message}", err=True)
    sys.exit(1)


@click.group(cls=LedgerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="webinar-ledger", prog_name="ledger")
def main() -> None:
    """Event-sourced payment ledger for paid webinars."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def _migrate(url: str) -> None:
    """Bring the database to this code's schema version, saying what was done."""
    from ledger.migrations import MigrationFailed, SchemaMismatch, migrate, target_version

    try:
        applied = migrate(url)
    except (MigrationFailed, SchemaMismatch) as exc:
        raise click.ClickException(str(exc)) from exc
    done = f"applied {', '.join(map(str, applied))}" if applied else "up to date"
    click.echo(f"Database schema: version {target_version()} ({done})", err=True)


def _check_schema(url: str) -> None:
    """Fail with what to do when the database is not at this code's version."""
    from ledger.migrations import SchemaNotReady, check

    try:
        check(url)
    except SchemaNotReady as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
def migrate() -> None:
    """Apply the schema migrations this database lacks (once, under a lock).

    Run it before a rollout; ``ledger run`` runs it itself.  Every other
    command only checks the version and refuses to start when it is behind."""
    from entrypoints.bootstrap import database_url

    _migrate(database_url(_settings()))


@main.command()
def run() -> None:
    """Embedded PostgreSQL and broker, the API and every worker; Ctrl-C stops all."""
    from entrypoints.bootstrap import database_url
    from entrypoints.supervisor import run as supervise
    from entrypoints.worker_registry import WORKERS

    settings = _settings()
    url = database_url(settings)
    _migrate(url)  # before anything else starts: the children only check the version
    supervise(settings, admin_token=_admin_token(settings, url), database_url=url, workers=list(WORKERS))


def _admin_token(settings: Settings, url: str) -> str | None:
    """A new admin token for the person at the terminal -- only if stdout *is*
    a terminal.  When it is a file or a pipe (``ledger run > run.log``,
    ``nohup``, a service manager's journal) it is a log, and a bearer token in
    a log is a leaked credential: then none is made, and ``ledger run`` says
    how to make one (``ledger token create`` prints it alone, on purpose)."""
    if not sys.stdout.isatty():
        return None
    from entrypoints.bootstrap import bootstrap
    from ledger import api_tokens

    ledger = bootstrap(settings, url=url, pool_size=1)
    try:
        return api_tokens.create_token(ledger.db, role="admin", label="ledger run")
    finally:
        ledger.close()


@main.command()
@click.option("--workers", default=2, show_default=True, help="worker processes")
@click.option("--threads", default=8, show_default=True, help="threads per worker process")
@click.option("--pin-workers", is_flag=True,
              help="keep each worker process on a CPU of its own (when this server owns the machine's CPUs)")
def serve(workers: int, threads: int, pin_workers: bool) -> None:
    """The HTTP API only."""
    from entrypoints.bootstrap import database_url
    from entrypoints.http_server import PortInUse
    from entrypoints.http_server import serve as run_server

    settings = _settings()
    url = database_url(settings)
    _check_schema(url)  # before gunicorn forks workers that would each fail
    try:
        run_server(settings, url, workers=workers, threads=threads, pin_workers=pin_workers)
    except PortInUse as exc:
        raise click.ClickException(str(exc)) from exc


@main.command()
@click.argument("name")
def worker(name: str) -> None:
    """One worker: projections, relay, notify, reconcile or sealer."""
    import signal

    from entrypoints.bootstrap import bootstrap, database_url
    from entrypoints.worker_registry import WORKERS, build
    from ledger.actor import current_actor

    if name not in WORKERS:
        raise click.BadParameter(f"unknown worker {name!r}; choose from {', '.join(WORKERS)}")
    settings = _settings()
    url = database_url(settings)
    _check_schema(url)
    broker = None
    if name == "relay":  # standalone: bring the embedded broker unless one is configured or running
        from workers.broker import ensure_broker

        broker = ensure_broker(settings)
    ledger = bootstrap(settings, url=url)
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
@click.option("--organizer", "organizer_id", default=None, help="organizer id (required with --role organizer)")
@click.option("--label", default="", help="a note to recognise the token by")
def token_create(role: str, organizer_id: str | None, label: str) -> None:
    """Print a new token alone on stdout (only its hash is kept)."""
    if role == "organizer" and not organizer_id:
        raise click.UsageError("--role organizer needs --organizer ID (the organizer the token acts for)")
    if role != "organizer" and organizer_id:
        raise click.UsageError(f"--organizer goes only with --role organizer; a {role} token sees every organizer")
    from entrypoints.bootstrap import bootstrap, database_url
    from ledger import api_tokens

    settings = _settings()
    _check_schema(database_url(settings))
    ledger = bootstrap(settings)
    try:
        if organizer_id:
            ledger.service.organizer(organizer_id)
        click.echo(api_tokens.create_token(ledger.db, role=role, organizer_id=organizer_id, label=label))
    finally:
        ledger.close()


def _register_component_commands() -> None:
    """Commands kept in their own modules (rebuild, reports, tail, status, verify, checkpoint)."""
    from entrypoints import cli_books, cli_proof, cli_status, cli_views

    cli_views.register(main)
    cli_status.register(main)
    cli_proof.register(main)
    cli_books.register(main)


_register_component_commands()

if __name__ == "__main__":
    main()
