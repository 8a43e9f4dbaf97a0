"""R21 bounded amounts, without I/O: the bound per currency, where it is
enforced (parsing, the domain), and the event JSON Schemas that tell Kafka
consumers about it (issue 11, item 2)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from ledger.domain.registration import Registration
from ledger.errors import AmountAboveLimit, AmountInvalid
from ledger.money import (
    AMOUNT_LIMIT_FACTOR,
    MAX_AMOUNT_MINOR,
    MAX_SAFE_MINOR,
    Money,
    amount_limit_minor,
    check_bounded,
)
from ledger.pricing import MAX_PRICE_MAJOR

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@pytest.mark.parametrize(("currency", "maximum"), sorted(MAX_PRICE_MAJOR.items()))
def test_r21_every_currency_is_bounded_by_ten_tickets_and_53_bits(currency: str, maximum: int) -> None:
    limit = amount_limit_minor(currency)
    assert limit == maximum * AMOUNT_LIMIT_FACTOR * 100 <= MAX_AMOUNT_MINOR < MAX_SAFE_MINOR == 2**53 - 1
    at_limit = Money(limit, currency)
    assert Money.received(at_limit.amount, currency) == at_limit
    with pytest.raises(AmountAboveLimit) as refused:
        Money.received((at_limit + Money(1, currency)).amount, currency)
    assert refused.value.code == "amount_above_limit" and refused.value.status == 422


@pytest.mark.parametrize("text", ["100000000000000000.00", "1" * 5000, "-100000000000000000", "9" * 40 + ".99"])
def test_r21_absurd_amounts_are_refused_when_received(text: str) -> None:
    with pytest.raises(AmountAboveLimit):
        Money.received(text, "EUR")


def test_r21_what_is_not_a_decimal_stays_amount_invalid() -> None:
    for text in ("1e30", "NaN", "12.345", " 1"):
        with pytest.raises(AmountInvalid):
            Money.received(text, "EUR")


def _rejected_registration() -> Registration:
    registration = Registration.register(
        id=uuid.uuid4(), event_id="e", organizer_id="org", name="N", email="n@example.com", fields={},
        language=None, price_minor=4900, currency="EUR", provider="manual",
    )
    registration.reject("no")
    return registration


def test_r21_the_domain_refuses_an_absurd_payment_whatever_built_the_money() -> None:
    """Issue 11 item 2: a payment on a *rejected* registration skipped the
    "exactly what is due" check, so 10**19 minor units became an event."""
    registration = _rejected_registration()
    version = registration.version
    for record in (
        lambda m: registration.record_payment(m, "manual", "r1", seat_granted=True),
        lambda m: registration.record_payment_mismatch(m, "stripe", "r2"),
        lambda m: registration.record_refund(m, "r3"),
    ):
        with pytest.raises(AmountAboveLimit):
            record(Money(10**19, "EUR"))
    assert registration.version == version  # nothing became an event
    limit = Money(amount_limit_minor("EUR"), "EUR")
    assert registration.record_payment(limit, "manual", "r1", seat_granted=True)  # the bound itself is accepted
    assert check_bounded(Money(-limit.minor, "EUR")) == Money(-limit.minor, "EUR")


def _minor_fields() -> list[tuple[str, str, dict[str, object]]]:
    found = []
    for path in sorted(SCHEMAS.glob("*.json")):
        data = json.loads(path.read_text()).get("properties", {}).get("data", {}).get("properties", {})
        found += [(path.stem, name, spec) for name, spec in data.items() if name.endswith("_minor")]
    return found


def test_r21_every_amount_in_the_event_schemas_states_its_maximum() -> None:
    """Kafka consumers learn the bound from docs/schemas: every ``*_minor``
    field says ``maximum`` (prices: R6's largest; amounts: R21's), below 2**53."""
    price_max = max(MAX_PRICE_MAJOR.values()) * 100
    fields = _minor_fields()
    assert len(fields) >= 7
    for schema, name, spec in fields:
        expected = price_max if name == "price_minor" else MAX_AMOUNT_MINOR
        assert spec.get("maximum") == expected, (schema, name)
        assert spec.get("type") in ("integer", ["integer", "null"]) and expected <= MAX_SAFE_MINOR  # null: v1 events
