"""The relay's cheaper encodings say exactly what the plain ones said:
``event_id`` is ``uuid5`` (consumers deduplicate by it), and the message
bytes are the compact JSON ``json`` wrote before orjson."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from ledger.event_log import EVENT_ID_NAMESPACE, LogItem, event_id
from workers.relay import encode


def test_event_id_is_uuid5_of_aggregate_and_version() -> None:
    for aggregate in (uuid.uuid4(), str(uuid.uuid4()), uuid.UUID(int=0)):
        for version in (1, 2, 200, 10**12):
            assert event_id(aggregate, version) == str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{aggregate}:{version}"))


def test_message_bytes_are_the_compact_json_of_before() -> None:
    item = LogItem(
        position=7, id=event_id(uuid.UUID(int=1), 3), type="registration.registered",
        aggregate_type="registration", aggregate_id=str(uuid.UUID(int=1)), aggregate_version=3,
        organizer_id=str(uuid.UUID(int=2)), occurred_at=datetime(2037, 12, 1, 10, tzinfo=UTC), schema_version=1,
        data={"name": "Zoë \u2028 \"q\" \\ \x01 \x7f", "fields": {"ü": "✓"}, "price_minor": 2**53 + 1, "ok": True,
              "none": None, "list": [1, "a", {"b": []}]},
        domain_event=None, actor="public",
    )
    key, value, headers = encode(item, include_pii=True, chain_hash="ab" * 32)
    before = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode(
        {**item.as_dict(include_pii=True), "hash": "ab" * 32}).encode()
    assert value == before and key == item.aggregate_id.encode()
    assert dict(headers)["event-id"] == item.id.encode()
