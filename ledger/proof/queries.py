"""Reads of the proof tables (``ledger/migrations/0008_proof.sql``): the node store, the sealed size,
chain hashes for log items, and the proofs the API serves.

Everything here reads what the sealer committed; a proof is only as far as
the seal (``SealState.size``), which trails the log by about a second (see
``ledger.proof.sealer``).  Proof JSON shapes (``GET /v1/ledger/proofs/…``)::

    inclusion:   {"position": 1234, "leaf_index": 1200, "size": 5000,
                  "leaf_hash": "<hex>", "encoding": "<base64 of the canonical bytes>",
                  "path": ["<hex>", …]}
    consistency: {"from_size": 4000, "to_size": 5000, "path": ["<hex>", …]}

``encoding`` lets a verifier recompute the leaf hash (SHA-256 of 0x00 ||
encoding) and read the event it proves (``ledger.proof.canonical.decode``);
``path`` is RFC 9162's audit path / consistency proof, in RFC order.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from ledger.errors import LedgerError, NotFound
from ledger.proof import canonical, merkle

#: The event store's table (the ``eventsourcing`` recorder of the application
#: named "ledger"; ledger/schema.sql's append-only trigger names it too).
EVENTS_TABLE = "ledger_events"


class ProofUnavailable(LedgerError):
    """The sizes asked for are not (yet) sealed, or are not a valid pair."""

    code = "proof_unavailable"
    status = 409
    title = "No proof for these sizes"


@dataclass(frozen=True)
class SealState:
    position: int  #: last sealed notification id (0 when none)
    size: int  #: events sealed = leaves in the stored tree
    chain_hash: bytes  #: chain hash of the last sealed event


class PgNodeStore:
    """``merkle.NodeStore`` over ``ledger_merkle_nodes``: one query per call."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def get_nodes(self, keys: Collection[merkle.Key]) -> Mapping[merkle.Key, bytes]:
        if not keys:
            return {}
        levels = [level for level, _ in keys]
        indexes = [index for _, index in keys]
        rows = self.conn.execute(
            "SELECT n.level, n.idx, n.hash FROM unnest(%s::smallint[], %s::bigint[]) AS k(level, idx)"
            " JOIN ledger_merkle_nodes n ON n.level = k.level AND n.idx = k.idx",
            (levels, indexes),
        ).fetchall()
        return {(int(level), int(index)): bytes(value) for level, index, value in rows}


def seal_state(conn: psycopg.Connection[Any], *, lock: bool = False) -> SealState:
    """The sealer's row; ``lock`` takes it FOR UPDATE (the sealer's batch lock)."""
    query = "SELECT position, size, chain_hash FROM ledger_proof_seal WHERE id"
    row = conn.execute(query + (" FOR UPDATE" if lock else "")).fetchone()
    if row is None:
        raise RuntimeError("ledger_proof_seal has no row: run `ledger migrate`")
    return SealState(int(row[0]), int(row[1]), bytes(row[2]))


def chain_hashes(conn: psycopg.Connection[Any], positions: Iterable[int]) -> dict[int, str]:
    """Hex chain hash per sealed position (``hash`` on ``GET /v1/ledger/events``
    items; a position not sealed yet is absent)."""
    wanted = list(positions)
    if not wanted:
        return {}
    rows = conn.execute(
        "SELECT position, chain_hash FROM ledger_event_hashes WHERE position = ANY(%s::bigint[])", (wanted,)
    ).fetchall()
    return {int(position): bytes(value).hex() for position, value in rows}


def tree_root(conn: psycopg.Connection[Any], size: int) -> bytes:
    """The stored tree's root at ``size`` (<= the sealed size)."""
    return merkle.root(size, PgNodeStore(conn))


def inclusion_proof(conn: psycopg.Connection[Any], position: int, size: int) -> dict[str, Any]:
    """The inclusion proof of the event at ``position`` in the tree of the first
    ``size`` events (JSON shape in the module docstring)."""
    sealed = seal_state(conn).size
    if not 0 < size <= sealed:
        raise ProofUnavailable(f"size must be between 1 and the sealed size {sealed}", field="size")
    row = conn.execute(
        "SELECT leaf_index FROM ledger_event_hashes WHERE position = %s", (position,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no sealed event at position {position}", field="position")
    leaf_index = int(row[0])
    if leaf_index >= size:
        raise ProofUnavailable(
            f"the event at position {position} is leaf {leaf_index}, not in a tree of {size}", field="size"
        )
    ranges = merkle.inclusion_ranges(leaf_index, size)
    keys = merkle.keys_of(ranges) | {(0, leaf_index)}
    nodes = PgNodeStore(conn).get_nodes(keys)
    path = [merkle.range_hash(start, end, nodes) for start, end in ranges]
    return {
        "position": position,
        "leaf_index": leaf_index,
        "size": size,
        "leaf_hash": nodes[0, leaf_index].hex(),
        "encoding": base64.b64encode(_encoding(conn, position)).decode(),
        "path": [value.hex() for value in path],
    }


def consistency_proof(conn: psycopg.Connection[Any], from_size: int, to_size: int) -> dict[str, Any]:
    """The proof that the first ``from_size`` events are a prefix of the first
    ``to_size`` (JSON shape in the module docstring)."""
    sealed = seal_state(conn).size
    if not 0 <= from_size <= to_size <= sealed:
        raise ProofUnavailable(f"need 0 <= from_size <= to_size <= the sealed size {sealed}", field="to_size")
    path = merkle.consistency_proof(from_size, to_size, PgNodeStore(conn))
    return {"from_size": from_size, "to_size": to_size, "path": [value.hex() for value in path]}


def _encoding(conn: psycopg.Connection[Any], position: int) -> bytes:
    row = conn.execute(
        f"SELECT notification_id, originator_id, originator_version, topic, state FROM {EVENTS_TABLE}"
        " WHERE notification_id = %s", (position,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no stored event at position {position}", field="position")
    return canonical.encode(int(row[0]), row[1], int(row[2]), row[3], bytes(row[4]))
