"""kafka-python's default partitioning of keyed messages, for less CPU.

Why: the relay keys every message by its aggregate id, and kafka-python's
``DefaultPartitioner`` hashes each key with a pure-Python murmur2 (~5 µs a
message, byte by byte) and builds two sets of the topic's partitions per
message.  An aggregate's events come in runs (a registration's two or three
events, a busy event's seat events), so the relay remembers each key's hash,
and computes a new one a word at a time.

The partition is exactly the default partitioner's -- ``murmur2(key) &
0x7fffffff`` modulo the number of partitions, indexing the sorted partition
ids -- so a key lands on the same partition as before (and as any Kafka
client's default partitioner puts it): consumers' per-key order is unchanged.
Only the hash is remembered, never the partition, so a topic that grows
partitions is partitioned as kafka-python would partition it.
"""

from __future__ import annotations

import struct
from typing import Any

from kafka.partitioner import DefaultPartitioner

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF
#: Keys whose hash is remembered at most (then the memory starts afresh).
MAX_KEYS = 100_000


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``org.apache.kafka.common.utils.Utils.murmur2``), as
    kafka-python computes it (an unsigned 32-bit value), reading whole words."""
    length = len(data)
    h = _SEED ^ length
    words = length >> 2
    for k in struct.unpack_from(f"<{words}I", data):
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        end = length - tail
        if tail == 3:
            h ^= data[end + 2] << 16
        if tail >= 2:
            h ^= data[end + 1] << 8
        h = ((h ^ data[end]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


class KeyHashPartitioner(DefaultPartitioner):
    """The default partitioner with each key's hash remembered (see the module
    docstring).  Used from the producer's calling thread only."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._hashes: dict[bytes, int] = {}
        self._max = max_keys

    def partition(
        self, topic: str, key: Any, serialized_key: bytes | None, value: Any, serialized_value: Any, cluster: Any,
    ) -> int:
        if serialized_key is None:
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        hashed = self._hashes.get(serialized_key)
        if hashed is None:
            hashed = murmur2(serialized_key) & 0x7FFFFFFF
            if len(self._hashes) >= self._max:
                self._hashes.clear()
            self._hashes[serialized_key] = hashed
        partitions = cluster.partitions_for_topic(topic)
        if partitions is None:
            raise ValueError(f"Topic {topic} not found in ClusterMetadata")
        return int(sorted(partitions)[hashed % len(partitions)])
