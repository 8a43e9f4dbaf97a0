"""The pages' pure helpers (no browser, no database): money per language, times
typed in the event's zone, the SVG chart's escaping, the login redirect guard."""

from __future__ import annotations

from datetime import UTC

import pytest

from api.pages.charts import Bar, bar_chart
from api.pages.formatting import format_amount, local_time, parse_local
from api.pages.session_auth import safe_next
from ledger.errors import ValidationFailed


@pytest.mark.parametrize(("amount", "currency", "language", "shown"), [
    ("49.00", "USD", "en", "$49.00"),
    ("1234567.50", "EUR", "en", "€1,234,567.50"),
    ("1234.50", "PLN", "en", "PLN\u00a01,234.50"),
    ("-12.30", "GBP", "en", "\u2212£12.30"),
    ("2000.00", "CHF", "en", "CHF\u00a02,000.00"),
    ("700000.00", "HUF", "en", "HUF\u00a0700,000.00"),  # every stored digit, not CLDR's cash digits
    ("49.00", "PLN", "pl", "49,00\u00a0zł"),
    ("12345.67", "PLN", "pl", "12\u00a0345,67\u00a0zł"),
    ("49.00", "USD", "pl", "49,00\u00a0USD"),
    ("-1234.50", "EUR", "pl", "\u22121\u00a0234,50\u00a0€"),
])
def test_amounts_are_shown_in_the_pages_language(amount: str, currency: str, language: str, shown: str) -> None:
    assert format_amount(amount, currency, language) == shown


def test_times_are_read_and_shown_in_the_events_zone() -> None:
    moment = parse_local("2037-12-08T19:30", "Europe/Warsaw")
    assert moment.astimezone(UTC).isoformat() == "2037-12-08T18:30:00+00:00"
    assert local_time("2037-12-08T18:30:00+00:00", "America/New_York") == "Tue 8 Dec 2037, 13:30 EST"
    with pytest.raises(ValidationFailed) as gap:  # 02:30 does not exist on the spring-forward night
        parse_local("2026-03-29T02:30", "Europe/Warsaw")
    assert "does not exist" in gap.value.detail
    with pytest.raises(ValidationFailed):
        parse_local("next tuesday", "Europe/Warsaw")


def test_chart_escapes_text_and_scales_bars() -> None:
    svg = str(bar_chart("c1", "Fee <script>", [Bar("2026-10", 0, "$0.00"), Bar("2026-11", 250, '$2.50"><x')]))
    assert "<script>" not in svg and "&lt;script&gt;" in svg and '"><x' not in svg
    assert svg.count('class="chart-bar"') == 2 and 'role="img"' in svg


@pytest.mark.parametrize(("target", "kept"), [
    ("/app/events?status=paid", True),
    ("https://evil.example/app/", False),
    ("//evil.example/app/", False),
    ("/v1/events", False),
    ("/app/\\evil", False),
])
def test_login_only_returns_inside_the_pages(target: str, kept: bool) -> None:
    assert (safe_next(target) == target) is kept
