"""The relay's murmur2 is kafka-python's, bit for bit: a key's partition (and
so the per-aggregate order consumers rely on) does not depend on which one
computed it."""

from __future__ import annotations

import os
import uuid

from kafka.partitioner import murmur2 as kafka_murmur2

from workers.key_partitioner import murmur2


def test_murmur2_is_kafka_pythons() -> None:
    keys = [os.urandom(length) for length in range(0, 70) for _ in range(20)]
    keys += [str(uuid.uuid4()).encode() for _ in range(2000)] + [b"", b"\xff" * 7, b"\x00" * 5]
    for key in keys:
        assert murmur2(key) == kafka_murmur2(key), key
