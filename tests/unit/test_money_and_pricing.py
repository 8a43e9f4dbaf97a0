"""R5, R6, R3, R8: exact money and the price rules, without I/O."""

from __future__ import annotations

import pytest

from ledger.errors import (
    AmountInvalid,
    CurrencyMismatch,
    CurrencyNotSupported,
    CurrencyNotSupportedByProvider,
    PriceAboveLimit,
    PriceBelowMinimum,
    ProviderNotAvailableInCountry,
)
from ledger.money import Money
from ledger.pricing import MAX_PRICE_MAJOR, check_price, check_provider_country


@pytest.mark.parametrize(
    ("text", "minor"), [("49.00", 4900), ("49", 4900), ("49.5", 4950), ("0.01", 1), ("2000.00", 200000)]
)
def test_r8_amounts_parse_exactly(text: str, minor: int) -> None:
    assert Money.parse(text, "USD") == Money(minor, "USD")


@pytest.mark.parametrize("text", ["49.001", "1e3", "NaN", "Infinity", " 49", "49 ", "", "4,9", "0x10", "+1"])
def test_r8_inexact_or_malformed_amounts_are_refused(text: str) -> None:
    with pytest.raises(AmountInvalid):
        Money.parse(text, "USD")


def test_r8_a_float_is_refused() -> None:
    with pytest.raises(AmountInvalid):
        Money.parse(49.0, "USD")  # type: ignore[arg-type]


def test_r8_money_renders_every_minor_digit_and_refuses_mixed_currencies() -> None:
    assert Money(5, "PLN").amount == "0.05"
    assert Money(-150, "EUR").amount == "-1.50"
    with pytest.raises(CurrencyMismatch):
        Money(1, "USD") + Money(1, "EUR")


@pytest.mark.parametrize(("currency", "limit"), sorted(MAX_PRICE_MAJOR.items()))
def test_r6_every_currency_limit_is_inclusive(currency: str, limit: int) -> None:
    provider = "payu" if currency == "PLN" else "stripe"
    check_price(Money.of(limit, currency), provider)
    check_price(Money.of(1, currency), provider)
    with pytest.raises(PriceAboveLimit):
        check_price(Money.of(limit, currency) + Money(1, currency), provider)
    with pytest.raises(PriceBelowMinimum):
        check_price(Money(99, currency), provider)


def test_r6_the_table_matches_the_domain_document() -> None:
    assert MAX_PRICE_MAJOR["USD"] == 2000 and MAX_PRICE_MAJOR["PHP"] == 106000
    assert MAX_PRICE_MAJOR["HUF"] == 700000 and MAX_PRICE_MAJOR["SGD"] == 2800
    assert len(MAX_PRICE_MAJOR) == 22


def test_r6_other_currencies_are_refused() -> None:
    with pytest.raises(CurrencyNotSupported):
        Money.parse("10.00", "JPY")


@pytest.mark.parametrize("currency", ["HUF", "BGN", "RON"])
@pytest.mark.parametrize("provider", ["paypal", "manual", "payu"])
def test_r6_huf_bgn_ron_only_with_stripe(currency: str, provider: str) -> None:
    check_price(Money.of(10, currency), "stripe")
    with pytest.raises(CurrencyNotSupportedByProvider):
        check_price(Money.of(10, currency), provider)


def test_r3_payu_accepts_pln_only() -> None:
    check_price(Money.of(10, "PLN"), "payu")
    with pytest.raises(CurrencyNotSupportedByProvider):
        check_price(Money.of(10, "EUR"), "payu")


def test_r3_payu_is_for_polish_organizers_only() -> None:
    check_provider_country("payu", "PL")
    check_provider_country("stripe", "DE")
    with pytest.raises(ProviderNotAvailableInCountry):
        check_provider_country("payu", "DE")
