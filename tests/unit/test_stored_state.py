"""The stored states written through orjson (``ledger.stored_state``) are the
library transcoder's bytes, for every event class of ``ledger.domain``,
sealed and erased personal data, and the values the fast path leaves to the
library (which must then still do what it did, raising included)."""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import DomainEvent
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)
from eventsourcing.utils import get_topic, resolve_topic

import ledger.domain.organizer
import ledger.domain.paid_event
import ledger.domain.registration
from ledger.application import ActorMapper
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.personal_data import ERASED, PERSONAL_FIELDS, SEALED, Keyring
from ledger.secret_box import SecretBox
from ledger.stored_state import MAX_DEPTH, StateEncoder, plain_json

TEXT = 'Zoë "Ada" Łovelace \\ \n\t\r\b\f \x00\x1f\x7f \u2028\u2029 日本語 🎟️ </script>'


def transcoder() -> JSONTranscoder:
    """The transcoder ``LedgerStore`` builds: the library's, with its three
    standard transcodings (``Application.register_transcodings``)."""
    plain = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        plain.register(transcoding)
    return plain


def domain_event_classes() -> list[type[Any]]:
    """Every event class of ``ledger.domain``, once per topic."""
    modules = (ledger.domain.organizer, ledger.domain.paid_event, ledger.domain.registration)
    found: dict[str, type[Any]] = {}
    pending = list(DomainEvent.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__ in {m.__name__ for m in modules}:
            topic = f"{cls.__module__}:{cls.__qualname__}"
            found.setdefault(topic, resolve_topic(topic))  # the class the topic names (the store's)
    assert len(found) > 30
    return [found[topic] for topic in sorted(found)]


def sample(annotation: str, variant: int) -> Any:
    """A value of a field's declared type: text with every escape, big ints."""
    optional = annotation.endswith("| None")
    if optional and variant == 1:
        return None
    kind = annotation.removesuffix(" | None")
    return {
        "str": TEXT,
        "int": (2**63 - 1, -(2**63), 4900)[variant % 3],
        "bool": variant % 2 == 0,
        "dict[str, str]": {"company": TEXT, "ключ": "", "": "x"},
        "list[dict[str, str]]": [{"id": "s1", "starts_at": "2037-12-01T00:00:00+00:00"}, {}],
        "list[str]": ["name", "email", TEXT],
    }[kind]


TIMESTAMPS = (
    datetime(2026, 11, 30, 23, 15, 56, 1583, tzinfo=UTC),
    datetime(2026, 11, 30, 23, 15, 56, tzinfo=UTC),  # no microseconds
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, 0, 7, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 3, 29, 1, 30),  # naive
)


def events(cls: type[Any]) -> Iterator[Any]:
    """Instances of ``cls`` as the domain makes them (state in ``__dict__``)."""
    for variant, timestamp in enumerate(TIMESTAMPS):
        state: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name == "originator_id":
                state[field.name] = uuid4()
            elif field.name == "originator_version":
                state[field.name] = 1 + variant
            elif field.name == "timestamp":
                state[field.name] = timestamp
            elif field.name == "originator_topic":
                state[field.name] = "ledger.domain.registration:Registration"
            else:
                state[field.name] = sample(str(field.type), variant)
        state["actor"] = ("public", "admin:0123456789ab", TEXT)[variant % 3]
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        yield event


@pytest.mark.parametrize("cls", domain_event_classes(), ids=get_topic)
def test_every_domain_event_is_stored_as_the_library_stores_it(cls: type[Any]) -> None:
    library: Mapper[UUID] = Mapper(transcoder())
    ours = ActorMapper(transcoder())  # no keyring: personal fields in clear
    for event in events(cls):
        theirs, mine = library.to_stored_event(event), ours.to_stored_event(event)
        assert mine == theirs
        decoded = dict(vars(ours.to_domain_event(mine)))
        decoded.pop(ERASED, None)  # (the ledger's reader says whether personal data was erased)
        assert decoded == vars(library.to_domain_event(theirs))


def test_the_stores_transcoder_takes_the_fast_path() -> None:
    assert StateEncoder(transcoder()).fast
    assert not StateEncoder(type("Other", (JSONTranscoder,), {})()).fast


class Color(enum.Enum):
    RED = "red"


class Label(enum.StrEnum):
    VIP = "vip"


class Text(str):
    pass


@pytest.mark.parametrize("value", [
    {"price": Decimal("12.30"), "nan": Decimal("NaN"), "big": Decimal("1E+30")},
    {"id": UUID("0b6f6c1e-8a57-4a53-9d0e-2b6c8a6d1c11"), "ids": [uuid4(), (uuid4(), {"x": uuid4()})]},
    {"when": [TIMESTAMPS[0], {"nested": TIMESTAMPS[3]}], "naive": TIMESTAMPS[4]},
    {"ints": [2**63, 2**64 - 1, 2**64, -(2**63) - 1, 10**40, -(10**40), 0, -1]},
    {"float": 0.1, "e": 1e16, "small": 1e-7, "int_like": 2.0, "inf": float("inf"), "nan": float("nan")},
    {"tuple": (1, "a", (None, True)), "empty": [(), {}, []]},
    {"label": Label.VIP, "text": Text("sub"), "bool_keys": {True: 1, 2: "b", None: "n", 1.5: "f"}},
    {"keys with text": {TEXT: TEXT}, "": ""},
    {"deep": json.loads("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5))},
    {"deep_ok": json.loads("[" * (MAX_DEPTH - 2) + '"x"' + "]" * (MAX_DEPTH - 2))},
    [1, "top-level list", {"a": TIMESTAMPS[0]}],
    "a bare string", 12, None,
])
def test_values_encode_to_the_library_bytes(value: Any) -> None:
    assert StateEncoder(transcoder()).encode(value) == transcoder().encode(value)


def test_random_utc_datetimes_are_written_as_isoformat() -> None:
    encoder, library = StateEncoder(transcoder()), transcoder()
    rng = random.Random(17)
    for _ in range(3000):
        moment = datetime(rng.choice([1, 9, 99, 999, 1000, 1970, 9999, rng.randint(1, 9999)]), rng.randint(1, 12),
                          rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59),
                          rng.choice([0, 1, 999_999, rng.randint(0, 999_999)]), tzinfo=UTC)
        state = {"timestamp": moment, "list": [moment]}
        assert encoder.encode(state) == library.encode(state)


@pytest.mark.parametrize("value, error", [
    ({"lone surrogate": "\ud800"}, UnicodeEncodeError),
    ({"enum": Color.RED}, TranscodingNotRegisteredError),
    ({"bytes": b"x"}, TranscodingNotRegisteredError),
    ({"set": {1}}, TranscodingNotRegisteredError),
    ({"date": datetime(2026, 1, 1).date()}, TranscodingNotRegisteredError),
])
def test_what_the_library_refuses_is_still_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        transcoder().encode(value)
    with pytest.raises(error):
        StateEncoder(transcoder()).encode(value)


def test_a_transcoding_registered_later_is_honoured() -> None:
    coder = transcoder()
    encoder = StateEncoder(coder)

    class ShortUUID(UUIDAsHex):
        name = "uuid_short"

        def encode(self, obj: UUID) -> str:
            return obj.hex[:8]

    coder.register(ShortUUID())
    value = {"id": UUID("0b6f6c1e-8a57-4a53-9d0e-2b6c8a6d1c11"), "t": TIMESTAMPS[0]}
    assert encoder.encode(value) == coder.encode(value) == (
        b'{"id":{"_type_":"uuid_short","_data_":"0b6f6c1e"},'
        b'"t":{"_type_":"datetime_iso","_data_":"2026-11-30T23:15:56.001583+00:00"}}')


@pytest.mark.parametrize("value", [
    {"name": TEXT, "email": "zoë@exämple.org", "fields": {"company": TEXT, "": ""}},
    {"name": None, "email": None, "fields": None},
    {"reason": "550 5.1.1 <ann@example.org>: Recipient address rejected"},
    {"name": "x", "fields": {"n": 2**70}},
])
def test_personal_json_is_json_dumps(value: Any) -> None:
    assert plain_json(value) == json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def test_personal_json_refuses_what_json_dumps_refuses() -> None:
    for value in ({"when": TIMESTAMPS[0]}, {"name": "\udfff"}):
        with pytest.raises((TypeError, UnicodeEncodeError)) as theirs:
            json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        with pytest.raises(theirs.type):
            plain_json(value)


class KeyTable:
    """``personal_data_keys`` as rows in a dict (what the recorder inserts)."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes | None] = {}

    def execute(self, sql: str, params: tuple[Any, ...]) -> KeyTable:
        self._found = [(rid, self.rows[rid]) for rid in params[0] if rid in self.rows]
        return self

    def fetchall(self) -> list[tuple[str, bytes | None]]:
        return self._found

    @contextmanager
    def transaction(self) -> Iterator[KeyTable]:
        yield self


@pytest.mark.parametrize("cls", sorted(PERSONAL_FIELDS, key=str), ids=get_topic)
def test_sealed_and_erased_events_are_stored_in_the_library_form(cls: type[Any]) -> None:
    """The sealed state's bytes are the library's encoding of that state (its
    ciphertext is random: decoded and encoded again, it must not change), it
    opens to the fields written, and an erased registration's event stores
    none of them."""
    table = KeyTable()
    ring = Keyring(SecretBox(os.urandom(32)), table.transaction)
    mapper = ActorMapper(transcoder())
    mapper.keyring = ring
    library = transcoder()
    for event in events(cls):
        rid = str(event.originator_id)
        if cls is not Registration.Registered:  # a later event of a registration: its key exists
            ring.key_for_sealing(rid, new=True)
        stored = mapper.to_stored_event(event)
        state = library.decode(stored.state)
        assert library.encode(state) == stored.state
        assert set(PERSONAL_FIELDS[cls]).isdisjoint(state) and SEALED in state
        for found, wrapped in ring.pending_rows([rid]):
            table.rows[found] = wrapped
        ring.committed([rid])
        opened = vars(mapper.to_domain_event(stored))
        assert opened == {**vars(event), ERASED: False}
        if cls is Registration.Registered:  # (a new registration always gets a new key)
            continue
        table.rows[rid] = None  # erased
        ring.forget([rid])
        erased = mapper.to_stored_event(event)
        state = library.decode(erased.state)
        assert library.encode(state) == erased.state
        assert SEALED not in state and set(PERSONAL_FIELDS[cls]).isdisjoint(state)
        assert all(vars(mapper.to_domain_event(erased))[name] is None for name in PERSONAL_FIELDS[cls])


def test_a_snapshot_is_stored_as_the_library_stores_it() -> None:
    """Snapshots hold the aggregate's own state (nested datetimes, UUIDs):
    the library's bytes whichever path writes them."""
    from eventsourcing.domain import Snapshot

    paid = PaidEvent.create(id=uuid4(), organizer_id="o", title=TEXT, description="", timezone="UTC",
                            permanent=False, sessions=[{"id": "s1", "starts_at": "2037-12-01T00:00:00+00:00"}],
                            price_minor=1000, currency="EUR", provider="manual", connection_id=None)
    paid.hold_seat("r1", capacity=5, now=datetime(2030, 1, 1, tzinfo=UTC), until=datetime(2030, 1, 2, tzinfo=UTC))
    snapshot = Snapshot.take(paid)
    object.__setattr__(snapshot, "actor", "system")
    library: Mapper[UUID] = Mapper(transcoder())
    assert ActorMapper(transcoder()).to_stored_event(snapshot) == library.to_stored_event(snapshot)  # type: ignore[arg-type]
