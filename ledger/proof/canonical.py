"""The canonical bytes of one stored event, and the hashes over them (R23).

Everything the proof covers is computed from the event exactly as the event
store keeps it — the row ``(notification_id, originator_id, originator_version,
topic, state)`` — never from a decoded object, so nothing depends on how this
code (or a later version of it) reads events.  ``state`` is the stored JSON of
the event: it already holds the event's timestamp (``occurred_at``) and data,
and the public ``id`` (uuid5 of aggregate id and version) and ``type`` (from
the topic) are functions of the fields covered.  Hashing the stored bytes is
what lets personal data be stored encrypted and later erased by destroying its
key: the hash covers the ciphertext ("encrypt, then hash"), which never changes.

Encoding, version 1 (all integers unsigned big-endian)::

    offset  size  field
    0       4     tag: ASCII "LEV1" (0x4C 0x45 0x56 0x31)
    4       8     position (the notification id)
    12      16    aggregate id (the UUID's 16 bytes, RFC 4122 order)
    28      8     aggregate version
    36      4     T = byte length of the topic
    40      T     topic, UTF-8 (e.g. "ledger.domain.registration:Registration.Registered")
    40+T    4     S = byte length of the stored state
    44+T    S     stored state bytes, as in the ``state`` column

Hashes (SHA-256 throughout; ``||`` is concatenation):

* ``entry_hash(e) = SHA-256(encoding(e))``;
* the chain: ``chain_0 = 32 zero bytes`` (genesis), and for the n-th event in
  log order (n = 1, 2, …) ``chain_n = SHA-256(chain_{n-1} || entry_hash(e_n))``.
  ``chain_n`` is the ``hash`` shown on ``GET /v1/ledger/events`` items;
* the Merkle tree (RFC 9162 §2.1.1): ``leaf(e) = SHA-256(0x00 || encoding(e))``
  and interior nodes ``SHA-256(0x01 || left || right)``.

**Positions may skip numbers**: an insert that rolls back still consumes a
value of the position sequence.  The chain and the tree are therefore over the
events *in log order*, not over positions: an event's leaf index is the number
of stored events before it (0-based), and the tree of size ``n`` covers the
first ``n`` events.  The position is inside the encoding, so a gap is part of
what is proven (an event cannot move to another position unnoticed).
"""

from __future__ import annotations

import hashlib
import struct
from uuid import UUID

from eventsourcing.persistence import Notification

TAG = b"LEV1"
GENESIS = bytes(32)
HASH_SIZE = 32

_HEAD = struct.Struct(">4sQ16sQI")
_LENGTH = struct.Struct(">I")
_sha256 = hashlib.sha256


def encode(
    position: int, aggregate_id: UUID | bytes | str, version: int, topic: str | bytes, state: bytes
) -> bytes:
    """The version-1 encoding documented above."""
    if isinstance(aggregate_id, bytes):
        raw_id = aggregate_id
    else:
        raw_id = (aggregate_id if isinstance(aggregate_id, UUID) else UUID(aggregate_id)).bytes
    raw_topic = topic.encode() if isinstance(topic, str) else topic
    if len(raw_id) != 16:
        raise ValueError("an aggregate id is 16 bytes")
    return _HEAD.pack(TAG, position, raw_id, version, len(raw_topic)) + raw_topic + _LENGTH.pack(len(state)) + state


def encode_notification(notification: Notification) -> bytes:
    return encode(
        notification.id, notification.originator_id, notification.originator_version,
        notification.topic, bytes(notification.state),
    )


def decode(encoding: bytes) -> tuple[int, UUID, int, str, bytes]:
    """(position, aggregate id, version, topic, state) of a version-1 encoding;
    ValueError if it is not exactly one."""
    if len(encoding) < _HEAD.size + 4:
        raise ValueError("too short for an encoded event")
    tag, position, raw_id, version, topic_length = _HEAD.unpack_from(encoding)
    if tag != TAG:
        raise ValueError(f"unknown encoding tag {tag!r}")
    at = _HEAD.size + topic_length
    if len(encoding) < at + 4:
        raise ValueError("truncated topic")
    topic = encoding[_HEAD.size:at].decode()
    (state_length,) = _LENGTH.unpack_from(encoding, at)
    state = encoding[at + 4:]
    if len(state) != state_length:
        raise ValueError("state length does not match")
    return position, UUID(bytes=raw_id), version, topic, state


def entry_hash(encoding: bytes) -> bytes:
    return _sha256(encoding).digest()


def chain_hash(previous: bytes, entry: bytes) -> bytes:
    return _sha256(previous + entry).digest()


def leaf_hash(encoding: bytes) -> bytes:
    return _sha256(b"\x00" + encoding).digest()


def hashes(encoding: bytes, previous_chain: bytes) -> tuple[bytes, bytes, bytes]:
    """(entry hash, chain hash, Merkle leaf hash) of one event."""
    entry = _sha256(encoding).digest()
    return entry, _sha256(previous_chain + entry).digest(), _sha256(b"\x00" + encoding).digest()
