"""``ledger rebuild`` and ``ledger report fees``: the views' commands,
registered on the console script by ``entrypoints.cli``."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from ledger.container import Ledger


def _ledger() -> Ledger:
    from entrypoints.bootstrap import bootstrap
    from ledger.config import Settings

    return bootstrap(Settings.from_env())


@click.command("rebuild")
@click.option("--restart", is_flag=True, help="discard an unfinished rebuild instead of resuming it")
@click.option("--no-progress", is_flag=True, help="no progress bar (e.g. in logs)")
@click.option("--batch-size", default=5000, show_default=True, help="events per transaction")
def rebuild_command(restart: bool, no_progress: bool, batch_size: int) -> None:
    """Rebuild every view from position 0 into fresh tables, then switch over
    atomically; the API keeps serving the old tables meanwhile.  An interrupted
    rebuild is resumed by the next run."""
    import logging

    from projections.rebuild import RebuildFailed, rebuild

    ledger = _ledger()
    try:
        result = rebuild(ledger, progress=not no_progress, restart=restart, batch_size=batch_size)
    except RebuildFailed as exc:  # an event the views cannot take: say which, never a traceback
        click.echo(f"error: {exc}", err=True)
        click.echo("The views in use are unchanged.  Fix the cause, then run `ledger rebuild` again: "
                   "it resumes at that event.", err=True)
        sys.exit(1)
    except Exception as exc:
        logging.getLogger(__name__).debug("rebuild failed", exc_info=exc)
        click.echo(f"error: the rebuild failed: {type(exc).__name__}: {exc}", err=True)
        sys.exit(1)
    finally:
        ledger.close()
    how = "resumed" if result.resumed else "built"
    click.echo(f"generation {result.generation} {how} and active at position {result.position}: "
               f"{result.events} events in {result.seconds:.1f}s ({result.rate:,.0f} events/s)")


@click.command("fees")
@click.option("--from", "date_from", default=None, help="first UTC day, YYYY-MM-DD")
@click.option("--to", "date_to", default=None, help="last UTC day, YYYY-MM-DD (inclusive)")
@click.option("--currency", default=None, help="one currency, e.g. USD")
@click.option("--organizer", default=None, help="one organizer id")
@click.option("--period", type=click.Choice(["day", "month", "year"]), default="month", show_default=True)
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout instead of a table")
@click.option("--wide", is_flag=True, help="one line per row whatever the terminal width")
@click.option("--as-of", "as_of", default=None, help="position:<n> or an RFC 3339 time")
def fees_command(
    date_from: str | None, date_to: str | None, currency: str | None, organizer: str | None,
    period: str, as_csv: bool, wide: bool, as_of: str | None = None,
) -> None:
    """Service fees (R16) per organizer, currency and period, with totals."""
    from rich.console import Console

    from projections import fee_report

    ledger = _ledger()
    try:
        report = fee_report.query(ledger.db, organizer=organizer, currency=currency, date_from=date_from,
                                  date_to=date_to, period=period, as_of=as_of)
    finally:
        ledger.close()
    if as_csv:
        click.echo(fee_report.to_csv(report), nl=False)
    else:
        # Ids and amounts are never cut: cells wrap (fold) in a narrow
        # terminal, and --wide prints each row on one line.
        Console(width=240 if wide else None).print(fee_report.to_table(report))


def register(main: click.Group) -> None:
    """Add the projection commands to the ``ledger`` group (unless present)."""
    if "rebuild" not in main.commands:
        main.add_command(rebuild_command)
    report = main.commands.get("report")
    if report is None:
        report = click.Group("report", help="Reports from the read models.")
        main.add_command(report)
    if isinstance(report, click.Group) and "fees" not in report.commands:
        report.add_command(fees_command)
