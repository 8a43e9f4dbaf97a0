"""A stored event's state as JSON bytes: exactly the library's, at less CPU.

Why: every new event is turned into its stored bytes by the library's
``JSONTranscoder`` -- Python's ``json`` encoder with a Python ``default``
hook called for each ``datetime``, ``UUID`` and ``Decimal`` (every event has
its ``timestamp``), and ``json.dumps`` builds a new encoder on every call.  A
registration stores two events and seals one JSON object of personal data:
~4 % of a registration's Python samples under load (py-spy), 11 of the 22 µs
its two events took to map in-process.  Here the value is checked
and its registered types replaced by the transcoder's tagged form
(``{"_type_": "datetime_iso", "_data_": "…"}``) in one pass, and orjson (a
dependency already: the Kafka relay uses it) writes the JSON.

**The bytes are the library's.**  orjson and ``json`` with
``separators=(",", ":")`` and ``ensure_ascii=False`` write the same text for
what this module lets through: ``str`` (non-ASCII as UTF-8, the same escapes
for ``"``, ``\\`` and control characters), ``int`` within 64 bits, ``bool``,
``None``, ``list``/``tuple``, and ``dict`` with ``str`` keys in insertion
order -- each of exactly that type.  Anything else -- a ``float`` (the two
libraries spell some differently), a subclass (an ``Enum``, a ``str``
subclass), a key that is not a ``str``, a bigger ``int``, an unregistered
type, a lone surrogate, nesting deeper than :data:`MAX_DEPTH` -- goes to the
library's own encoder, which then does what it always did (including raising).
A ``datetime`` in UTC (``tzinfo`` is ``datetime.UTC``, as the ledger's clock
gives them) is left to orjson, whose RFC 3339 text is then ``isoformat()``'s
(``+00:00``, microseconds only when not zero, four-digit years); any other
``datetime`` is written through ``isoformat()`` as the library does.
``tests/unit/test_stored_state.py`` compares both for every event class of
``ledger.domain`` and for the edge cases.

Used only when the transcoder is exactly the library's ``JSONTranscoder`` with
its three standard transcodings (what ``LedgerStore`` registers) and its
encoder's usual settings; any other transcoder is always called itself.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import DatetimeAsISO, DecimalAsStr, JSONTranscoder, Transcoder, UUIDAsHex

#: Containers nested deeper than this go to the library's encoder (orjson
#: refuses beyond 254 levels; the events hold two or three).
MAX_DEPTH = 32
#: orjson writes ``int`` from -2**63 to 2**64 - 1 and refuses the rest.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
_PLAIN_SCALARS = frozenset({str, bool, type(None)})
#: The library's standard transcodings, by the type each one encodes.
_STANDARD = {UUID: UUIDAsHex, Decimal: DecimalAsStr, datetime: DatetimeAsISO}


class _NotPlain(Exception):
    """The value holds something this module leaves to the library."""


def _tagged(value: Any, tag: bool) -> dict[str, str]:
    """A registered type's tagged form, as the library's ``_encode_obj`` builds it."""
    if not tag:
        raise _NotPlain
    kind = type(value)
    if kind is datetime:
        return {"_type_": "datetime_iso", "_data_": value if value.tzinfo is UTC else value.isoformat()}
    if kind is UUID:
        return {"_type_": "uuid_hex", "_data_": value.hex}
    return {"_type_": "decimal_str", "_data_": str(value)}


def _prepared(value: Any, tag: bool, depth: int) -> Any:
    """``value`` ready for orjson: the same object when it holds only plain
    JSON values, else a copy with each ``datetime``/``UUID``/``Decimal``
    replaced by its tagged form (only when ``tag``).  Raises ``_NotPlain``
    for anything else."""
    kind = type(value)
    if kind in _PLAIN_SCALARS:
        return value
    if kind is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        raise _NotPlain
    if kind in _STANDARD:
        return _tagged(value, tag)
    if depth >= MAX_DEPTH:
        raise _NotPlain
    if kind is dict:
        copy: dict[str, Any] | None = None
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            item_kind = type(item)
            if item_kind in _PLAIN_SCALARS:
                continue
            if item_kind is int:  # inlined: the common cases need no call
                if _INT_MIN <= item <= _INT_MAX:
                    continue
                raise _NotPlain
            if item_kind is datetime and tag:  # every event's timestamp
                ready: Any = {"_type_": "datetime_iso", "_data_": item if item.tzinfo is UTC else item.isoformat()}
            else:
                ready = _prepared(item, tag, depth + 1)
                if ready is item:
                    continue
            if copy is None:
                copy = dict(value)  # same order: assigning an existing key keeps its place
            copy[key] = ready
        return value if copy is None else copy
    if kind is list or kind is tuple:
        items: list[Any] | None = None
        for index, item in enumerate(value):
            if type(item) in _PLAIN_SCALARS:
                continue
            ready = _prepared(item, tag, depth + 1)
            if ready is not item:
                if items is None:
                    items = list(value)
                items[index] = ready
        return value if items is None else items
    raise _NotPlain


def plain_json(value: Any) -> bytes:
    """``json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()``,
    byte for byte (how the personal data is written before it is sealed)."""
    try:
        return orjson.dumps(_prepared(value, False, 0))
    except (_NotPlain, TypeError):  # orjson's JSONEncodeError is a TypeError (e.g. a lone surrogate)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class StateEncoder:
    """Encodes stored states as ``transcoder.encode`` does, byte for byte,
    through orjson when the transcoder is the library's standard one."""

    def __init__(self, transcoder: Transcoder) -> None:
        self.transcoder = transcoder
        standard = isinstance(transcoder, JSONTranscoder) and _is_standard(transcoder)
        self._standard = cast(JSONTranscoder, transcoder) if standard else None
        self._types = dict(self._standard.types) if self._standard is not None else {}

    @property
    def fast(self) -> bool:
        """Whether states go through orjson (the transcoder is the standard one)."""
        return self._standard is not None and self._standard.types == self._types

    def encode(self, state: Any) -> bytes:
        standard = self._standard
        if standard is None or standard.types != self._types:  # not (any longer) the standard one
            return self.transcoder.encode(state)
        try:
            return orjson.dumps(_prepared(state, True, 0))
        except (_NotPlain, TypeError):
            return standard.encode(state)


def _is_standard(transcoder: JSONTranscoder) -> bool:
    """The library's ``JSONTranscoder`` itself, with exactly the standard
    transcodings and the encoder settings it is built with."""
    if type(transcoder) is not JSONTranscoder:
        return False
    encoder = transcoder.encoder
    return (
        type(encoder) is json.JSONEncoder
        and encoder.item_separator == "," and encoder.key_separator == ":"
        and encoder.ensure_ascii is False and not encoder.sort_keys and encoder.indent is None
        and not encoder.skipkeys and encoder.default == transcoder._encode_obj
        and transcoder.types.keys() == _STANDARD.keys()
        and all(type(transcoder.types[kind]) is transcoding for kind, transcoding in _STANDARD.items())
    )
