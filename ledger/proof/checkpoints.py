"""Signed checkpoints (R23): Ed25519 statements "the log's first ``size``
events have Merkle root ``root``", kept in ``ledger_checkpoints`` and meant to
be copied outside the system (an auditor saves one at month end).

JSON (``GET /v1/ledger/checkpoints/latest``, ``ledger checkpoint``)::

    {"size": 5000, "root": "<64 hex>", "time": "2025-01-31T23:59:59Z",
     "key_id": "<16 hex>", "signature": "<128 hex>"}

The signed message is exactly these UTF-8 bytes (``\\n`` = 0x0A)::

    ledger-checkpoint-v1\\n{size in decimal}\\n{root, 64 lowercase hex}\\n{time}\\n

``time`` is the signing time, RFC 3339 UTC to the second with a ``Z``.
``key_id`` is the first 8 bytes, in hex, of SHA-256 of the 32-byte raw public
key.  The public key (``GET /v1/ledger/checkpoints/public-key``)::

    {"algorithm": "Ed25519", "key_id": "<16 hex>", "public_key": "<64 hex, raw>"}

**The key**: ``LEDGER_CHECKPOINT_KEY`` (64 hex characters: the Ed25519 private
seed) or, when unset, one generated once into ``<data dir>/checkpoint.key``
(hex seed, mode 0600, created with O_EXCL so that processes starting together
agree on it).  Keep a copy: checkpoints signed by a lost key still verify with
its published public key, but no new ones can be signed by it.

**When**: on demand (:func:`produce`, ``ledger checkpoint``) and periodically
by the sealer (:class:`CheckpointSchedule`: after every ``every_events`` newly
sealed events, or ``every_seconds`` after the last checkpoint if anything was
sealed since; defaults 10,000 events / 60 s).  A checkpoint is never signed
twice for the same size and key: asking again returns the stored one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import psycopg
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.clock import Clock, utc_now
from ledger.key_files import generated_key
from ledger.proof import queries

MESSAGE_TAG = "ledger-checkpoint-v1"
KEY_FILE = "checkpoint.key"
KEY_ENV = "LEDGER_CHECKPOINT_KEY"


@dataclass(frozen=True)
class Checkpoint:
    size: int
    root: bytes
    time: str  #: RFC 3339 UTC, as signed
    key_id: str
    signature: bytes

    def message(self) -> bytes:
        return signed_message(self.size, self.root, self.time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size, "root": self.root.hex(), "time": self.time,
            "key_id": self.key_id, "signature": self.signature.hex(),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Checkpoint:
        """ValueError unless ``data`` has exactly the documented shape."""
        if not isinstance(data, Mapping) or set(data) != {"size", "root", "time", "key_id", "signature"}:
            raise ValueError("a checkpoint has exactly size, root, time, key_id and signature")
        size = data["size"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("size must be a non-negative integer")
        root, signature = _hex(data["root"], 32, "root"), _hex(data["signature"], 64, "signature")
        if not isinstance(data["time"], str) or not isinstance(data["key_id"], str):
            raise ValueError("time and key_id are strings")
        return cls(size, root, data["time"], data["key_id"], signature)

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from error
        return cls.from_dict(data)


def signed_message(size: int, root: bytes, signed_time: str) -> bytes:
    return f"{MESSAGE_TAG}\n{size}\n{root.hex()}\n{signed_time}\n".encode()


def key_id(public_key: bytes) -> str:
    return hashlib.sha256(public_key).digest()[:8].hex()


def raw_public_key(private_key: Ed25519PrivateKey) -> bytes:
    return private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def public_key_document(private_key: Ed25519PrivateKey) -> dict[str, str]:
    """The JSON published at ``GET /v1/ledger/checkpoints/public-key``."""
    raw = raw_public_key(private_key)
    return {"algorithm": "Ed25519", "key_id": key_id(raw), "public_key": raw.hex()}


def verify_signature(checkpoint: Checkpoint, public_key: bytes) -> bool:
    """True if ``checkpoint`` is signed by ``public_key`` (raw 32 bytes) and names it."""
    if checkpoint.key_id != key_id(public_key):
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(checkpoint.signature, checkpoint.message())
    except (InvalidSignature, ValueError):
        return False
    return True


class CheckpointSigner:
    """Signs checkpoints with one Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey, clock: Clock = utc_now) -> None:
        self.private_key, self.clock = private_key, clock
        self.public_key = raw_public_key(private_key)
        self.key_id = key_id(self.public_key)

    def sign(self, size: int, root: bytes) -> Checkpoint:
        signed_time = self.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        signature = self.private_key.sign(signed_message(size, root, signed_time))
        return Checkpoint(size, root, signed_time, self.key_id, signature)


def load_signing_key(data_dir: Path, env: Mapping[str, str] | None = None) -> Ed25519PrivateKey:
    """``LEDGER_CHECKPOINT_KEY`` (hex seed) or ``<data_dir>/checkpoint.key``,
    generated on first use (like ``ledger.config``'s ``secret.key``)."""
    env = os.environ if env is None else env
    if env.get(KEY_ENV):
        return Ed25519PrivateKey.from_private_bytes(_seed(env[KEY_ENV], KEY_ENV))
    return Ed25519PrivateKey.from_private_bytes(generated_key(data_dir / KEY_FILE))


# --- stored checkpoints ------------------------------------------------------------------


def produce(conn: psycopg.Connection[Any], signer: CheckpointSigner) -> Checkpoint:
    """A checkpoint of everything sealed, signed now and stored — or the stored
    one when this size is already signed by this key.  Call in a transaction."""
    size = queries.seal_state(conn).size
    existing = _select(conn, "WHERE size = %s AND key_id = %s", (size, signer.key_id))
    if existing:
        return existing[0]
    checkpoint = signer.sign(size, queries.tree_root(conn, size))
    conn.execute(
        "INSERT INTO ledger_checkpoints (size, key_id, root, signed_time, signature)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (checkpoint.size, checkpoint.key_id, checkpoint.root, checkpoint.time, checkpoint.signature),
    )
    return checkpoint


def latest(conn: psycopg.Connection[Any]) -> Checkpoint | None:
    found = _select(conn, "ORDER BY size DESC, created_at DESC LIMIT 1", ())
    return found[0] if found else None


def stored(conn: psycopg.Connection[Any]) -> list[Checkpoint]:
    """Every stored checkpoint, smallest size first (``ledger verify`` checks them all)."""
    return _select(conn, "ORDER BY size, created_at", ())


def _select(conn: psycopg.Connection[Any], tail: str, params: tuple[Any, ...]) -> list[Checkpoint]:
    rows = conn.execute(
        "SELECT size, root, signed_time, key_id, signature FROM ledger_checkpoints " + tail, params
    ).fetchall()
    return [Checkpoint(int(s), bytes(r), t, k, bytes(sig)) for s, r, t, k, sig in rows]


class CheckpointSchedule:
    """When the sealer signs the next checkpoint: once ``every_events`` events
    were sealed since the last one, or ``every_seconds`` after it if any were.
    Bounded both ways: never more than one per sealed batch, never staler than
    ``every_seconds`` plus one follower wake-up while events arrive."""

    def __init__(self, every_events: int = 10_000, every_seconds: float = 60.0) -> None:
        if every_events < 1 or every_seconds <= 0:
            raise ValueError("every_events >= 1 and every_seconds > 0")
        self.every_events, self.every_seconds = every_events, every_seconds
        self.signed_size: int | None = None  #: size of the last checkpoint (None: not known yet)
        self.signed_at = time.monotonic()

    def due(self, sealed_size: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.signed_size is None:
            return True  # first call: sign (or find) the current size
        fresh = sealed_size - self.signed_size
        return fresh >= self.every_events or (fresh > 0 and now - self.signed_at >= self.every_seconds)

    def signed(self, size: int, now: float | None = None) -> None:
        self.signed_size, self.signed_at = size, time.monotonic() if now is None else now


def _hex(value: Any, size: int, name: str) -> bytes:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError as error:
        raise ValueError(f"{name} is not hex") from error
    if len(raw) != size:
        raise ValueError(f"{name} must be {size} bytes")
    return raw


def _seed(text: str, where: str) -> bytes:
    try:
        seed = bytes.fromhex(text.strip())
    except ValueError:
        seed = b""
    if len(seed) != 32:
        raise ValueError(f"{where} must be 64 hex characters (a 32-byte Ed25519 seed)")
    return seed
