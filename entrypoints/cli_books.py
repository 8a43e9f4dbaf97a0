"""``ledger books trial-balance`` and ``ledger books statement``: the books
(R22, docs/books.md) in a terminal or as CSV, registered by ``entrypoints.cli``."""

from __future__ import annotations

import csv
import io
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ledger.container import Ledger


def _ledger() -> Ledger:
    from entrypoints.bootstrap import bootstrap
    from ledger.config import Settings

    return bootstrap(Settings.from_env())


def _read(what: Any) -> Any:
    """Run a read; a refused input is one line on stderr and exit status 1 (as every domain error)."""
    from ledger.errors import LedgerError

    ledger = _ledger()
    try:
        return what(ledger)
    except LedgerError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        ledger.close()


@click.command("trial-balance")
@click.option("--organizer", default=None, help="one organizer id")
@click.option("--currency", default=None, help="one currency, e.g. USD")
@click.option("--as-of", "as_of", default=None, help="position:<n> or an RFC 3339 time")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout instead of a table")
def trial_balance_command(organizer: str | None, currency: str | None, as_of: str | None, as_csv: bool) -> None:
    """Every account's debits, credits and balance, with totals per currency
    (debits equal credits: marked "balanced").  Exit status 1 if a currency
    does not balance."""
    from projections import books, books_query

    found = _read(lambda ledger: books_query.trial_balance(
        ledger.db, organizer=organizer, currency=currency, as_of=as_of))
    body = found.as_dict()
    if as_csv:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(("kind", "organizer_id", "currency", "account", "debit", "credit", "balance"))
        for a in body["accounts"]:
            writer.writerow(("account", a["organizer_id"], a["currency"], a["account"], a["debit"], a["credit"],
                             a["balance"]))
        for t in body["totals"]:
            writer.writerow(("total", "", t["currency"], "", t["debit"], t["credit"], ""))
        click.echo(buffer.getvalue(), nl=False)
    else:
        from rich.console import Console
        from rich.table import Table

        point = body["as_of"]
        table = Table(title=f"Trial balance as of position {point['position']}"
                            + (f" ({point['time']})" if point["time"] else ""))
        for name in ("organizer", "currency", "account", "debit", "credit", "balance"):
            table.add_column(name, justify="right" if name in ("debit", "credit", "balance") else "left",
                             overflow="fold")
        for a in body["accounts"]:
            table.add_row(a["organizer_id"], a["currency"], f"{a['account']} ({books.describe(a['account'])})",
                          a["debit"], a["credit"], a["balance"])
        for t in body["totals"]:
            mark = "balanced" if t["balanced"] else "NOT BALANCED"
            table.add_row(f"[b]total[/b] {mark}", t["currency"], "", t["debit"], t["credit"], "", style="bold")
        Console().print(table)
    if not found.balanced:
        sys.exit(1)


@click.command("statement")
@click.argument("organizer")
@click.option("--from", "date_from", default=None, help="first UTC day, YYYY-MM-DD")
@click.option("--to", "date_to", default=None, help="last UTC day, YYYY-MM-DD (inclusive)")
@click.option("--currency", default=None, help="one currency, e.g. USD")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout instead of a table")
def statement_command(organizer: str, date_from: str | None, date_to: str | None, currency: str | None,
                      as_csv: bool) -> None:
    """An organizer's statement: opening balance, money received, refunds,
    owed back, sales, service fee and closing balance per currency."""
    from projections import books_query

    found = _read(lambda ledger: books_query.statement(
        ledger.db, organizer, date_from=date_from, date_to=date_to, currency=currency))
    if as_csv:
        click.echo("".join(books_query.statement_csv(found)), nl=False)
        return
    from rich.console import Console
    from rich.table import Table

    body = found.as_dict()
    table = Table(title=f"Statement of {body['organizer_id']}: {body['from'] or 'start'} .. {body['to'] or 'now'}")
    names = ("currency", "opening_balance", "received", "refunds", "withdrawn", "owed_back", "sales", "fee",
             "closing_balance")
    for name in names:
        table.add_column(name.replace("_", " "), justify="left" if name == "currency" else "right")
    for figures in body["currencies"]:
        table.add_row(*(figures[n] for n in names))
    Console().print(table)


def register(main: click.Group) -> None:
    """Add ``ledger books …`` to the ``ledger`` group (unless present)."""
    books = main.commands.get("books")
    if books is None:
        books = click.Group("books", help="The books: trial balance and statements (double entry).")
        main.add_command(books)
    if isinstance(books, click.Group):
        for command in (trial_balance_command, statement_command):
            if command.name not in books.commands:
                books.add_command(command)
