"""The canonical event encoding (ledger/proof/canonical.py, docs/audit.md)
byte for byte, and the hashes over it."""

from __future__ import annotations

import hashlib
from uuid import UUID

import pytest
from eventsourcing.persistence import Notification

from ledger.proof import canonical

AGGREGATE = UUID("12345678-9abc-def0-1234-56789abcdef0")
TOPIC = "ledger.domain.organizer:Organizer.PlanChanged"
STATE = b'{"plan_size":7,"timestamp":{"_type_":"datetime_iso","_data_":"2025-01-31T12:00:00+00:00"}}'


def test_the_encoding_is_as_documented() -> None:
    encoding = canonical.encode(258, AGGREGATE, 3, TOPIC, STATE)
    expected = (
        b"LEV1"
        + bytes([0, 0, 0, 0, 0, 0, 1, 2])  # position 258
        + bytes.fromhex("123456789abcdef0123456789abcdef0")  # aggregate id
        + bytes([0, 0, 0, 0, 0, 0, 0, 3])  # version 3
        + len(TOPIC).to_bytes(4, "big") + TOPIC.encode()
        + len(STATE).to_bytes(4, "big") + STATE
    )
    assert encoding == expected
    assert canonical.decode(encoding) == (258, AGGREGATE, 3, TOPIC, STATE)
    # every accepted form of the same fields encodes the same way
    assert canonical.encode(258, AGGREGATE.bytes, 3, TOPIC.encode(), STATE) == encoding
    assert canonical.encode(258, str(AGGREGATE), 3, TOPIC, STATE) == encoding
    notification = Notification(id=258, originator_id=AGGREGATE, originator_version=3, topic=TOPIC, state=STATE)
    assert canonical.encode_notification(notification) == encoding


def test_the_hashes() -> None:
    encoding = canonical.encode(1, AGGREGATE, 1, TOPIC, STATE)
    entry, chain, leaf = canonical.hashes(encoding, canonical.GENESIS)
    assert canonical.GENESIS == bytes(32)
    assert entry == hashlib.sha256(encoding).digest() == canonical.entry_hash(encoding)
    assert chain == hashlib.sha256(bytes(32) + entry).digest() == canonical.chain_hash(bytes(32), entry)
    assert leaf == hashlib.sha256(b"\x00" + encoding).digest() == canonical.leaf_hash(encoding)


def test_any_change_changes_the_hashes() -> None:
    base = canonical.encode(5, AGGREGATE, 2, TOPIC, STATE)
    variants = [
        canonical.encode(6, AGGREGATE, 2, TOPIC, STATE),
        canonical.encode(5, UUID(int=AGGREGATE.int ^ 1), 2, TOPIC, STATE),
        canonical.encode(5, AGGREGATE, 3, TOPIC, STATE),
        canonical.encode(5, AGGREGATE, 2, TOPIC + "x", STATE),
        canonical.encode(5, AGGREGATE, 2, TOPIC, STATE[:-1] + b" "),
        # moving a byte between topic and state keeps the concatenation but not the lengths
        canonical.encode(5, AGGREGATE, 2, TOPIC[:-1], TOPIC[-1:].encode() + STATE),
    ]
    assert len({canonical.entry_hash(v) for v in [base, *variants]}) == len(variants) + 1


@pytest.mark.parametrize("broken", [b"", b"LEV2" + bytes(40), canonical.encode(1, AGGREGATE, 1, TOPIC, STATE)[:-1]])
def test_decode_refuses_what_is_not_one_encoding(broken: bytes) -> None:
    with pytest.raises(ValueError):
        canonical.decode(broken)
