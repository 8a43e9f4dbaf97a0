"""The save function's array parameters (ledger.application): the builders
for arrays without NULLs write what the generic builder writes."""

from __future__ import annotations

import uuid

import pytest

from ledger.application import (
    _INT8,
    _array_of,
    _ByteaArray,
    _int8_array,
    _Int8Array,
    _sized,
    _sized_array,
    _TextArray,
    _uuid,
    _uuid_array,
    _uuid_bytes,
    _UuidArray,
)


@pytest.mark.parametrize("count", [0, 1, 2, 7])
def test_the_arrays_without_nulls_are_the_generic_arrays(count: int) -> None:
    ids = [uuid.uuid4() for _ in range(count)]
    texts = [str(i) for i in ids]
    values = [bytes(range(i * 37 % 256)) * (i + 1) for i in range(count)]
    versions = [(-1) ** i * 2**62 + i for i in range(count)]
    for built, generic in (
        (_uuid_array([_uuid_bytes(i) for i in ids]), _array_of(_UuidArray, [_uuid(i) for i in ids])),
        (_uuid_array([_uuid_bytes(t) for t in texts]), _array_of(_UuidArray, [_uuid(t) for t in texts])),
        (_sized_array(_ByteaArray, values), _array_of(_ByteaArray, [_sized(v) for v in values])),
        (_sized_array(_TextArray, [t.encode() for t in texts]),
         _array_of(_TextArray, [_sized(t.encode()) for t in texts])),
        (_int8_array(versions), _array_of(_Int8Array, [_INT8.pack(8, v) for v in versions])),
    ):
        assert type(built) is type(generic) and bytes(built) == bytes(generic)


def test_uuid_text_in_any_spelling_uuid_accepts() -> None:
    value = uuid.uuid4()
    for spelling in (str(value), value.hex, str(value).upper(), "{" + str(value) + "}", f"urn:uuid:{value}"):
        assert _uuid_bytes(spelling) == value.bytes
