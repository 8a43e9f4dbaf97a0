"""The organizer's contact e-mail (issue 18 item 2): one event per real change,
a conservative ASCII address shape (the notify worker sends no SMTPUTF8)."""

from __future__ import annotations

import uuid

import pytest

from ledger.domain.organizer import Organizer, check_contact_email
from ledger.errors import ValidationFailed


def _organizer() -> Organizer:
    return Organizer.register(id=uuid.uuid4(), name="Acme", country="PL", plan_size=50)


def test_setting_changing_and_removing_the_contact_records_one_event_each() -> None:
    organizer = _organizer()
    assert organizer.email is None
    assert organizer.change_contact("billing@acme.example") is True
    assert organizer.change_contact(" billing@acme.example ") is False  # the same address, trimmed
    assert organizer.change_contact("ops@acme.example") is True
    assert organizer.change_contact(None) is True
    assert organizer.change_contact("") is False  # already none
    changes = [e for e in organizer.collect_events() if isinstance(e, Organizer.ContactChanged)]
    assert [e.contact_email for e in changes] == ["billing@acme.example", "ops@acme.example", None]
    assert organizer.email is None


@pytest.mark.parametrize("address", [
    "plain", "a@b", "two@@example.com", "a b@example.com", "zażółć@example.pl", "x@exa mple.com",
    "a" * 250 + "@example.com",
])
def test_a_bad_address_is_refused_with_its_field(address: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        check_contact_email(address)
    assert "email" in (refused.value.errors() or {})


@pytest.mark.parametrize("address", ["a@b.co", "first.last+tag@sub.example.com", "o'brien@example.ie"])
def test_usual_addresses_are_accepted(address: str) -> None:
    assert check_contact_email(address) == address
