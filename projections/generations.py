"""Generations of the read models: which schema the API reads, which one a
rebuild fills, and the tracking position of each.

Why generations: a rebuild must not disturb readers.  Each full build lives in a
schema of its own (``projections_gN``); the stable views in the ``projections``
schema point at the *active* one.  Activating a generation is one transaction
(re-point the views, flip the states), so a reader sees either the old tables or
the new ones, never a half-built mix.

Locking protocol (what makes runner and rebuild safe together): whoever writes a
generation's tables first locks that generation's row ``FOR UPDATE`` in the same
transaction, and writes its new ``position`` there before committing.  Two
writers of one generation therefore serialize, and each reads the position only
after it holds the lock — so no event is applied twice or skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

#: The shape of a generation's tables (projections/schema.sql).  A generation
#: built with another layout is rebuilt by the runner before it applies events.
#: 2: who_paid.ticket_minor; fee_daily keyed by fee_policy, with refund_due_minor (issue 12).
#: 5 (migration 0012; 3 and 4 were never released): who_paid.name and .email
#:    nullable and who_paid.erased (R24); the books (journal_entries, journal_lines,
#:    book_accounts, book_checkpoints) and fee_facts (R22); who_paid.disputed,
#:    withdrawn_minor, reinstated_minor and fee_daily.withdrawn_minor (issue 18).
#: 6 (migration 0015): book_accounts.chart_order and the index of accounts in the
#:    order answers list them; journal_lines' and book_checkpoints' primary keys
#:    cover the figures "as of" reads (issue 15, speed).
LAYOUT = 6

SCHEMA_PREFIX = "projections_g"


@dataclass(frozen=True)
class Generation:
    generation: int
    schema_name: str
    layout: int
    state: str
    position: int
    target: int

    def table(self, name: str) -> sql.Identifier:
        """A qualified, quoted table name inside this generation's schema."""
        return sql.Identifier(self.schema_name, name)


_COLUMNS = "generation, schema_name, layout, state, position, target"


def _row(row: Any) -> Generation:
    return Generation(*row)


def active(conn: psycopg.Connection[Any], *, lock: bool = False) -> Generation | None:
    """The generation the API reads.  With ``lock`` the row is locked until the
    transaction ends; ``None`` can also mean that it was switched while we
    waited for the lock (the caller retries)."""
    query = f"SELECT {_COLUMNS} FROM projections.generations WHERE state = 'active'"
    row = conn.execute(query + (" FOR UPDATE" if lock else "")).fetchone()
    return _row(row) if row else None


def building(conn: psycopg.Connection[Any], *, lock: bool = False) -> Generation | None:
    """The generation a rebuild is filling (left behind by an interrupted one)."""
    query = f"SELECT {_COLUMNS} FROM projections.generations WHERE state = 'building'"
    row = conn.execute(query + (" FOR UPDATE" if lock else "")).fetchone()
    return _row(row) if row else None


def lock(conn: psycopg.Connection[Any], generation: int) -> Generation | None:
    """Lock one generation's row and read its current position (see module doc)."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM projections.generations WHERE generation = %s FOR UPDATE",
        (generation,),
    ).fetchone()
    return _row(row) if row else None


def advance(conn: psycopg.Connection[Any], generation: int, position: int) -> None:
    """Record the tracking position — always in the transaction of the writes."""
    conn.execute(
        "UPDATE projections.generations SET position = %s, updated_at = now() WHERE generation = %s",
        (position, generation),
    )


def create_building(conn: psycopg.Connection[Any], *, target: int) -> Generation:
    """A new, empty generation to rebuild into (the next number, fresh schema)."""
    number = conn.execute(
        "SELECT coalesce(max(generation), 0) + 1 FROM projections.generations"
    ).fetchone()
    assert number is not None
    schema_name = f"{SCHEMA_PREFIX}{number[0]}"
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema_name)))
    conn.execute("SELECT projections.create_generation_tables(%s)", (schema_name,))
    conn.execute(
        "INSERT INTO projections.generations (generation, schema_name, layout, state, target)"
        " VALUES (%s, %s, %s, 'building', %s)",
        (number[0], schema_name, LAYOUT, target),
    )
    found = building(conn)
    assert found is not None
    return found


def set_target(conn: psycopg.Connection[Any], generation: int, target: int) -> None:
    conn.execute(
        "UPDATE projections.generations SET target = %s WHERE generation = %s", (target, generation)
    )


def activate(conn: psycopg.Connection[Any], new: Generation, old: Generation | None) -> None:
    """Make ``new`` the generation readers see; the caller holds both row locks
    and commits.  DDL is transactional in PostgreSQL, so the view switch and the
    state flip become visible together."""
    if old is not None:
        conn.execute(
            "UPDATE projections.generations SET state = 'retired', updated_at = now()"
            " WHERE generation = %s",
            (old.generation,),
        )
    conn.execute(
        "UPDATE projections.generations SET state = 'active', activated_at = now(), updated_at = now()"
        " WHERE generation = %s",
        (new.generation,),
    )
    conn.execute("SELECT projections.point_views_at(%s)", (new.schema_name,))


def drop(conn: psycopg.Connection[Any], generation: Generation) -> None:
    """Drop a generation's schema (retired or abandoned builds); its row stays,
    marked ``dropped``, so generation numbers are never reused.  Waits for
    readers still inside the old tables, which is fine: nobody new goes there."""
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(generation.schema_name)))
    conn.execute(
        "UPDATE projections.generations SET state = 'dropped', updated_at = now() WHERE generation = %s",
        (generation.generation,),
    )


def retired(conn: psycopg.Connection[Any]) -> list[Generation]:
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM projections.generations WHERE state = 'retired' ORDER BY generation"
    ).fetchall()
    return [_row(r) for r in rows]
