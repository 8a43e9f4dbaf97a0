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
    PriceBelowProviderMinimum,
    ProviderNotAvailableInCountry,
)
from ledger.money import Money
from ledger.pricing import MAX_PRICE_MAJOR, check_price, check_provider_country, minimum_price


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
    check_price(minimum_price(currency, provider), provider)  # R6 one unit, or the provider's own minimum
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
    check_price(Money.of(200, currency), "stripe")
    with pytest.raises(CurrencyNotSupportedByProvider):
        check_price(Money.of(200, currency), provider)


def test_r3_payu_accepts_pln_only() -> None:
    check_price(Money.of(10, "PLN"), "payu")
    with pytest.raises(CurrencyNotSupportedByProvider):
        check_price(Money.of(10, "EUR"), "payu")


def test_r3_payu_is_for_polish_organizers_only() -> None:
    check_provider_country("payu", "PL")
    check_provider_country("stripe", "DE")
    with pytest.raises(ProviderNotAvailableInCountry):
        check_provider_country("payu", "DE")


@pytest.mark.parametrize(("price", "currency", "ok"), [
    ("1.99", "PLN", False), ("2.00", "PLN", True), ("14.99", "CZK", False), ("15.00", "CZK", True),
    ("174", "HUF", False), ("175", "HUF", True), ("9.99", "THB", False), ("9.99", "MXN", False),
    ("1.00", "USD", True),
])
def test_stripe_minimum_charges_are_refused_at_creation(price: str, currency: str, ok: bool) -> None:
    """Issue 18 item 3: Stripe refuses charges below its per-currency minimum,
    so such a price is refused when the event is created, with its own code."""
    amount = Money.parse(price, currency)
    if ok:
        check_price(amount, "stripe")
        return
    with pytest.raises(PriceBelowProviderMinimum) as refused:
        check_price(amount, "stripe")
    assert refused.value.code == "price_below_provider_minimum"
    assert str(minimum_price(currency, "stripe")) in refused.value.detail


def test_other_providers_keep_r6s_one_unit() -> None:
    check_price(Money.parse("1.00", "PLN"), "payu")
    check_price(Money.parse("1.00", "CZK"), "paypal")
    assert minimum_price("PLN", "payu") == Money.parse("1.00", "PLN")
