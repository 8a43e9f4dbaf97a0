"""Scopes, ids and who owns each aggregate (no database)."""

from __future__ import annotations

import uuid

import pytest

from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.errors import NotFound
from ledger.scope import ANYONE, Scope, parse_uuid


def test_a_scope_allows_its_own_organizer_and_anyone_allows_all() -> None:
    assert Scope("org-1").allows("org-1") and not Scope("org-1").allows("org-2")
    assert ANYONE.allows("org-1") and ANYONE.allows("org-2")


def test_parse_uuid_turns_anything_else_into_not_found() -> None:
    uid = uuid.uuid4()
    assert parse_uuid(uid, "event") is uid
    assert parse_uuid(str(uid), "event") == uid
    for bad in ("nope", "", None):
        with pytest.raises(NotFound):
            parse_uuid(bad, "event")  # type: ignore[arg-type]


def test_each_aggregate_names_its_owner() -> None:
    organizer = Organizer.register(id=uuid.uuid4(), name="O", country="US", plan_size=5)
    paid_event = PaidEvent.create(
        id=uuid.uuid4(), organizer_id=str(organizer.id), title="T", description="", timezone="UTC",
        permanent=False, sessions=[{"id": "s1", "starts_at": "2037-12-01T10:00:00+00:00"}],
        price_minor=4900, currency="USD", provider="manual", connection_id="c",
    )
    registration = Registration.register(
        id=uuid.uuid4(), event_id=str(paid_event.id), organizer_id=str(organizer.id), name="N",
        email="n@example.com", fields={}, language=None, price_minor=4900, currency="USD", provider="manual",
    )
    assert organizer.owner_id == paid_event.owner_id == registration.owner_id == str(organizer.id)
