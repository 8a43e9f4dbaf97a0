"""Rule ids (R1-R24) belong in code, tests and docs; what organizers and
participants read -- pages, flash messages, e-mails, error details -- says it
in plain words (issue 13, item 6)."""

from __future__ import annotations

import re
from pathlib import Path

from ledger import errors as ledger_errors
from ledger.money import Money
from ledger.pricing import check_price, check_provider_country

ROOT = Path(__file__).resolve().parents[2]
RULE_ID = re.compile(r"\bR\d{1,2}\b")


def test_page_templates_name_no_rule() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
        for path in sorted((ROOT / "api" / "pages" / "templates").glob("*.html"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if RULE_ID.search(line)
    ]
    assert found == []


def test_polish_page_catalog_names_no_rule() -> None:
    from babel.messages.pofile import read_po

    with open(ROOT / "api" / "pages" / "translations" / "pl" / "LC_MESSAGES" / "messages.po", "rb") as source:
        catalog = read_po(source)
    texts = [str(t) for m in catalog if m.id
             for t in (m.string if isinstance(m.string, (list, tuple)) else (m.string,))]
    assert texts and [t for t in texts if RULE_ID.search(t)] == []


def test_provider_hints_on_pages_name_no_rule() -> None:
    from api.pages.views_providers import provider_hint
    from ledger.providers.registry import PROVIDERS

    assert [p for p in PROVIDERS if RULE_ID.search(provider_hint(p))] == []


def test_flash_messages_name_no_rule() -> None:
    flashes = re.compile(r"(?:flash|_decide)\((?:[^()]|\([^()]*\))*\)", re.S)
    found = [
        f"{path.name}: {call[:90]}"
        for path in sorted((ROOT / "api" / "pages").glob("*.py"))
        for call in flashes.findall(path.read_text())
        if RULE_ID.search(call)
    ]
    assert found == []


def test_refusals_people_read_name_no_rule() -> None:
    refusals: list[ledger_errors.LedgerError] = []
    for price, currency, provider in (("0.50", "USD", "manual"), ("2000.01", "USD", "manual"),
                                      ("10.00", "HUF", "paypal"), ("1.00", "PLN", "stripe")):
        try:
            check_price(Money.parse(price, currency), provider)
        except ledger_errors.LedgerError as refused:
            refusals.append(refused)
    try:
        check_provider_country("payu", "US")
    except ledger_errors.LedgerError as refused:
        refusals.append(refused)
    refusals.append(ledger_errors.CurrencyNotSupported("XXX"))
    assert len(refusals) == 6
    assert [r.detail for r in refusals if RULE_ID.search(r.detail)] == []


def test_email_texts_name_no_rule() -> None:
    """Participants' and organizers' e-mails (issue 18: disputes, reversals,
    failed refunds told to the organizer) say it in plain words."""
    from workers.email_templates import ORGANIZER_TEXTS, TEXTS

    texts = [text for table in (TEXTS, ORGANIZER_TEXTS) for phrases in table.values() for text in phrases.values()]
    assert len(texts) > 100
    assert [t for t in texts if RULE_ID.search(t)] == []
