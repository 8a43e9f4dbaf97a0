"""Helpers for the proof tests: events written through the service, and a
superuser's edits that bypass the event store's append-only trigger."""

from __future__ import annotations

from typing import Any

import psycopg

from ledger.container import Ledger


def write_events(ledger: Ledger, count: int) -> list[int]:
    """``count`` events through the service (organizers and plan changes);
    returns the position of every event in the log, in log order."""
    service = ledger.service
    organizers: list[str] = []
    for i in range(count):
        if i % 4 == 0:
            organizers.append(str(service.register_organizer(name=f"Org {i}", country="PL", plan_size=50).id))
        else:
            service.change_plan(organizers[-1], 50 + i)
    with psycopg.connect(ledger.database_url) as conn:
        rows = conn.execute("SELECT notification_id FROM ledger_events ORDER BY notification_id").fetchall()
    return [int(r[0]) for r in rows]


def skip_a_position(ledger: Ledger) -> None:
    """What a rolled-back insert does: consume a value of the position sequence."""
    with psycopg.connect(ledger.database_url) as conn:
        conn.execute("SELECT nextval(pg_get_serial_sequence('ledger_events', 'notification_id'))")


def as_superuser(ledger: Ledger, *statements: tuple[str, tuple[Any, ...]] | str) -> None:
    """Run ``statements`` with triggers off (``session_replication_role =
    replica``): the append-only triggers do not fire."""
    with psycopg.connect(ledger.database_url) as conn:
        conn.execute("SET session_replication_role = replica")
        for statement in statements:
            if isinstance(statement, str):
                conn.execute(statement)  # type: ignore[call-overload]
            else:
                conn.execute(statement[0], statement[1])  # type: ignore[call-overload]


def flip_a_byte(ledger: Ledger, position: int, offset: int = 10) -> None:
    with psycopg.connect(ledger.database_url) as conn:
        row = conn.execute("SELECT state FROM ledger_events WHERE notification_id = %s", (position,)).fetchone()
    assert row is not None
    state = bytearray(row[0])
    state[offset] ^= 0x01
    as_superuser(ledger, ("UPDATE ledger_events SET state = %s WHERE notification_id = %s", (bytes(state), position)))


def delete_event(ledger: Ledger, position: int) -> None:
    as_superuser(ledger, ("DELETE FROM ledger_events WHERE notification_id = %s", (position,)))


def swap_events(ledger: Ledger, first: int, second: int) -> None:
    """Swap the log positions of two events (the unique index needs a detour)."""
    update = "UPDATE ledger_events SET notification_id = %s WHERE notification_id = %s"
    as_superuser(ledger, (update, (-1, first)), (update, (first, second)), (update, (second, -1)))


def truncate_from(ledger: Ledger, position: int) -> None:
    as_superuser(ledger, ("DELETE FROM ledger_events WHERE notification_id >= %s", (position,)))


def forge_at(ledger: Ledger, position: int, like: int) -> None:
    """Insert at ``position`` a copy of the event at ``like`` with a changed plan
    size (a forged event that looks real), under a new aggregate version."""
    with psycopg.connect(ledger.database_url) as conn:
        row = conn.execute(
            "SELECT originator_id, originator_version, topic, state FROM ledger_events WHERE notification_id = %s",
            (like,),
        ).fetchone()
        top = conn.execute(
            "SELECT max(originator_version) FROM ledger_events WHERE originator_id = %s", (row[0],)  # type: ignore[index]
        ).fetchone()
    assert row is not None and top is not None
    state = bytes(row[3]).replace(b'"plan_size":', b'"plan_size":9')
    as_superuser(ledger, (
        "INSERT INTO ledger_events (originator_id, originator_version, topic, state, notification_id)"
        " VALUES (%s, %s, %s, %s, %s)", (row[0], int(top[0]) + 1, row[2], state, position),
    ))


def rewrite_proof_tables(ledger: Ledger) -> None:
    """The thorough attacker: forget every hash and node (not the signed
    checkpoints, which need the key), so the sealer re-seals the edited log."""
    as_superuser(
        ledger,
        "DELETE FROM ledger_event_hashes", "DELETE FROM ledger_merkle_nodes",
        "UPDATE ledger_proof_seal SET position = 0, size = 0, chain_hash = '\\x"
        + "00" * 32 + "'::bytea",
    )
