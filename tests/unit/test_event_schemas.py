"""docs/schemas/<Type>.json is what the code generates, byte for byte (one
source: the event classes, the envelope file, the registry, R21, and the prose
catalog).  After changing an event: `make schemas`."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import event_catalog, event_schemas
from ledger.domain.registration import Registration
from ledger.event_log import PUBLIC_TYPES
from ledger.providers.registry import PROVIDERS


def test_every_schema_file_is_what_the_code_generates() -> None:
    stale = [
        name for name, text in event_schemas.generated().items()
        if (event_schemas.SCHEMAS_DIR / name).read_text() != text
    ]
    assert stale == [], f"run `make schemas`: {stale}"
    on_disk = {p.name for p in event_schemas.SCHEMAS_DIR.glob("*.json")} - {"envelope.json"}
    assert on_disk == {f"{public}.json" for public, _ in PUBLIC_TYPES.values()}


def test_the_provider_enum_is_the_registry() -> None:
    payment = event_schemas.build(Registration.PaymentRecorded)
    assert payment["properties"]["data"]["properties"]["provider"]["enum"] == list(PROVIDERS)


def test_a_field_without_documentation_or_a_stale_entry_fails_the_generator(monkeypatch: pytest.MonkeyPatch) -> None:
    events: dict[str, Any] = {k: {**v, "fields": dict(v["fields"])} for k, v in event_catalog.EVENTS.items()}
    del events["PaymentRecorded"]["fields"]["method"]
    monkeypatch.setattr(event_schemas, "EVENTS", events)
    with pytest.raises(event_schemas.SchemaSourceError, match=r"PaymentRecorded.method has no entry"):
        event_schemas.build(Registration.PaymentRecorded)
    events["PaymentRecorded"]["fields"]["method"] = {}
    events["PaymentRecorded"]["fields"]["gone"] = {}
    with pytest.raises(event_schemas.SchemaSourceError, match="fields the class lacks"):
        event_schemas.build(Registration.PaymentRecorded)
