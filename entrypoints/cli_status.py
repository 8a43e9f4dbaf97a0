"""``ledger tail`` and ``ledger status``, registered on the console script
by ``entrypoints.cli``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ledger.container import Ledger


@click.command("tail")
@click.option("--from-beginning", is_flag=True, help="a new consumer group starts at the oldest event")
@click.option("--group", default=None, help="Kafka consumer group (default: a new random one)")
@click.option("--json", "json_lines", is_flag=True, help="print each message as one JSON line")
def tail_command(from_beginning: bool, group: str | None, json_lines: bool) -> None:
    """Print the Kafka event stream as other systems see it (de-duplicated by
    event id).  Finds the broker from LEDGER_KAFKA_BOOTSTRAP or the one
    ``ledger run`` started for this data dir."""
    import logging
    import secrets

    from ledger.config import Settings
    from workers.broker import BrokerUnavailable
    from workers.tail import tail

    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    settings = Settings.from_env()
    try:
        tail(settings, from_beginning, group or f"ledger-tail-{secrets.token_hex(4)}", sys.stdout,
             json_lines=json_lines)
    except BrokerUnavailable as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.option("--check", "check", default=None, metavar="NAME",
              help="exit 0 if the view or worker NAME (or \"books\": they balance) is healthy, 1 if not")
def status_command(as_json: bool, check: str | None) -> None:
    """Where every consumer of the event log stands: head, projection lag,
    relay position, e-mail backlog, and each view's or worker's health (a
    stuck one says since when, at which event, and the error's class)."""
    import os

    from entrypoints.bootstrap import bootstrap
    from ledger import consumer_health, event_log
    from ledger.config import Environment, Settings
    from workers.broker import bootstrap_servers

    where = Environment.read(os.environ)
    if where.database_url is None and not (where.data_dir.resolve() / "pg").is_dir():
        # Look before touching anything: no server is started, no key written.
        click.echo(f"no ledger here: {where.data_dir.resolve()} holds no database (start one with `ledger run`, "
                   "or point LEDGER_DATA_DIR or LEDGER_DATABASE_URL at one)", err=True)
        sys.exit(1)
    settings = Settings.from_env()
    ledger = bootstrap(settings)
    if check is not None:
        try:
            sys.exit(_check(ledger, check))
        finally:
            ledger.close()
    try:
        report: dict[str, Any] = {"head": event_log.head(ledger.store), "broker": bootstrap_servers(settings)}
        try:
            from projections.runner import status

            report["projections"] = status(ledger).as_dict()
        except Exception as exc:
            report["projections"] = {"error": type(exc).__name__}
        with ledger.db.transaction() as conn:
            rows = conn.execute("SELECT topic, published_position, resets FROM relay_position").fetchall()
        report["relay"] = {
            topic: {"published_position": pos, "lag": max(0, report["head"] - pos), "resets": resets}
            for topic, pos, resets in rows
        }
        from workers.notify_sender import backlog

        report["emails"] = backlog(ledger)
        try:
            from projections import books_query

            report["books"] = books_query.check(ledger.db).as_dict()
        except Exception as exc:
            report["books"] = {"error": type(exc).__name__}
        now = consumer_health.now()
        report["consumers"] = [c.as_dict(report["head"], now) for c in consumer_health.read(ledger.db)]
    finally:
        ledger.close()
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
        return
    click.echo(f"event log head:   {report['head']}")
    click.echo(f"broker:           {report['broker'] or 'none (set LEDGER_KAFKA_BOOTSTRAP or start `ledger run`)'}")
    proj = report["projections"]
    click.echo(f"projections:      position {proj.get('position')}  lag {proj.get('lag')}"
               + ("  (rebuild in progress)" if proj.get("rebuilding") else ""))
    relay: dict[str, dict[str, Any]] = report["relay"]
    if not relay:
        click.echo("relay:            not started")
    for topic, r in relay.items():
        click.echo(f"relay {topic}: published {r['published_position']}  lag {r['lag']}")
    e = report["emails"]
    click.echo(f"e-mails:          {e['pending']} pending, {e['sent']} sent, {e['failed']} failed")
    b = report["books"]
    if "error" in b:
        click.echo(f"books:            could not be checked ({b['error']})")
    elif b["balanced"]:
        click.echo(f"books:            balanced at position {b['position']}")
    else:
        click.echo(f"books:            NOT BALANCED at position {b['position']}: " + "; ".join(b["problems"]))
    for c in report["consumers"]:
        click.echo(f"{c['name'] + ':':<17} {_health_line(c)}")


def _check(ledger: Ledger, name: str) -> int:
    """0 when ``name`` is healthy.  Log followers (projections, relay, notify,
    sealer) report their health (``ledger.consumer_health``); a worker that
    does not follow the log (reconcile) is healthy while the database answers."""
    from ledger import consumer_health, event_log

    if name == "books":
        from projections import books_query

        books = books_query.check(ledger.db)
        click.echo(f"books: balanced at position {books.position}" if books.balanced
                   else f"books: NOT BALANCED at position {books.position}: " + "; ".join(books.problems))
        return 0 if books.balanced else 1
    head = event_log.head(ledger.store)
    found = {c.name: c for c in consumer_health.read(ledger.db)}
    if name not in found:
        if name == "reconcile":
            click.echo("reconcile: ok (the database answers)")
            return 0
        click.echo(f"{name}: has not reported yet", err=True)
        return 1
    line = _health_line(found[name].as_dict(head, consumer_health.now()))
    click.echo(f"{name}: {line}")
    return 0 if line.startswith("ok") else 1


def _health_line(c: dict[str, Any]) -> str:
    """One consumer's health in a line: ``ok``, ``LAGGING`` or ``FAILING`` with what and since when."""
    where = f"position {c['position']}  lag {c['lag']}"
    if c["state"] == "ok":
        return f"ok  {where}"
    if c["state"] == "lagging":
        return f"LAGGING  {where}, not moved since {c['moved_at']}"
    event = (f"event {c['failing_event']} ({c['event_type']})" if c["failing_event"] is not None
             else f"after position {c['failing_after']}")
    return (f"FAILING since {c['failing_since']} ({c['failures']} attempts) at {event}: "
            f"{c['error_class']}: {c['error']}  [{where}]")


def register(main: click.Group) -> None:
    for command in (tail_command, status_command):
        if command.name not in main.commands:
            main.add_command(command)
