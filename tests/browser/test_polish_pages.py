"""Issue 13, item 7 in a real browser: the pages in Polish for an organizer
in Poland (R3's Polish organizers), money and dates in Polish style, a switch
to English that sticks, and the browser's language for everyone else."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import api_tokens
from ledger.money import Money
from tests.support.pages import LiveApp, follow, seed, shot, sign_in

pytestmark = pytest.mark.browser


def test_a_polish_organizer_sees_polish_and_can_switch_to_english(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Kurs budżetowania", people={"Anna Nowak": True, "Jan Kowalski": False})
    sign_in(page, live, seeded.token, language=None)  # the browser asks for en-GB; the country wins
    assert page.locator("html").get_attribute("lang") == "pl"
    assert page.locator(".flashes").inner_text() == "Zalogowano jako: organizator."
    assert page.locator("h1").inner_text() == "Płatne wydarzenia"
    events = page.locator("table.events-table")
    assert "49,00\u00a0zł" in events.inner_text()
    assert "wt. 1 gru 2037, 18:00 CET" in events.inner_text()

    follow(page, events.get_by_role("link", name="Kurs budżetowania"))
    assert page.get_by_role("heading", name="Kto zapłacił").count() == 1
    assert page.locator("#event-price").inner_text() == "49,00\u00a0zł"
    assert page.locator("#event-money [data-figure=gross]").inner_text() == "49,00\u00a0zł"
    row = page.locator(f"#p-{seeded.people['Anna Nowak']}")
    assert row.locator(".status").inner_text() == "opłacone"
    assert row.get_by_role("button", name="Potwierdź: Anna Nowak").count() == 1
    assert "sprzedane: 1" in page.locator("dl.facts").inner_text()
    shot(page, "22-polish-who-paid")

    follow(page, row.get_by_role("link", name="Zapisz zwrot dla: Anna Nowak"))
    form = page.locator("#refund-form")
    form.get_by_label("Kwota (PLN)").fill("60.00")
    form.get_by_label("Numer referencyjny zwrotu u operatora").fill("zwrot-anna")
    follow(page, form.get_by_role("button", name="Zapisz zwrot"))
    assert page.locator("#refund-form .field-error").inner_text() == "To więcej, niż można zwrócić: najwyżej 49,00\u00a0zł."
    follow(page, page.get_by_role("link", name="Wróć do listy wpłat"))

    follow(page, page.get_by_role("link", name="Jan Kowalski", exact=True))
    assert page.get_by_role("heading", name="Pełna historia").count() == 1
    follow(page, page.get_by_role("navigation", name="Menu główne").get_by_role("link", name="Wydarzenia"))
    follow(page, page.get_by_role("link", name="Utwórz płatne wydarzenie"))
    form = page.locator("#create-event")
    assert "Po utworzeniu wydarzenia ceny nie można już zmienić." in form.inner_text()
    assert "PayU przyjmuje wyłącznie PLN." in page.locator("#currency-notes").inner_text()
    assert "PLN — najwyżej 8\u00a0000,00\u00a0zł" in page.locator("#currency option").all_inner_texts()
    form.get_by_label("Tytuł").fill("Za drogi kurs")
    form.get_by_label("Pierwsza sesja (data i godzina)").fill("2037-12-01T18:00")
    form.get_by_label("Cena biletu").fill("8000.01")
    follow(page, form.get_by_role("button", name="Utwórz wydarzenie"))
    assert page.locator("#err-amount").inner_text() == "Najwyższa cena biletu w PLN to 8\u00a0000,00\u00a0zł."
    shot(page, "23-polish-create-event-error")

    follow(page, page.get_by_role("link", name="English"))  # after a refused form: back to the start page
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.locator("h1").inner_text() == "Paid events"
    follow(page, page.get_by_role("link", name="Create a paid event"))
    assert page.locator("h1").inner_text() == "Create a paid event"  # the choice sticks
    follow(page, page.get_by_role("link", name="Polski"))  # on a page opened with GET, the switch stays there
    assert page.locator("h1").inner_text() == "Utwórz płatne wydarzenie"
    follow(page, page.get_by_role("link", name="English"))
    follow(page, page.get_by_role("navigation", name="Main").get_by_role("link", name="Events"))
    assert "PLN\u00a049.00" in page.locator("table.events-table").inner_text()
    assert "Tue 1 Dec 2037, 18:00 CET" in page.locator("table.events-table").inner_text()
    follow(page, page.get_by_role("link", name="Polski"))
    assert page.locator("h1").inner_text() == "Płatne wydarzenia"


def test_others_get_the_browsers_language(browser: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Webinar in Berlin", people={}, country="DE", currency="EUR", price="20.00",
                  timezone="Europe/Berlin")
    for locale, heading, price in (("pl-PL", "Płatne wydarzenia", "20,00\u00a0€"),
                                   ("de-DE", "Paid events", "€20.00")):
        context = browser.new_context(locale=locale)
        page = context.new_page()
        sign_in(page, live, seeded.token, language=None)
        assert page.locator("h1").inner_text() == heading
        assert price in page.locator("table.events-table").inner_text()
        context.close()


def test_finance_pages_in_polish(browser: Any, live: LiveApp) -> None:
    """Finance has no country: a Polish browser gets the fee report and the
    event log in Polish, amounts in Polish style, the chart's text too."""
    seed(live, title="Raport po polsku", people={"Ewa Zielińska": True})
    token = api_tokens.create_token(live.ledger.db, role="finance")
    context = browser.new_context(locale="pl-PL", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live, token, language=None)
    assert page.locator(".flashes").inner_text() == "Zalogowano jako: finanse."
    assert page.locator("h1").inner_text() == "Raport opłat serwisowych"
    totals = page.locator("table.fees-table tfoot").inner_text()
    assert "Razem" in totals and "zł" in totals
    assert "Opłata serwisowa za każdy miesiąc w PLN" in (page.locator("#fee-chart-pln").text_content() or "")
    follow(page, page.get_by_role("link", name="Dziennik zdarzeń"))
    assert page.locator("h1").inner_text() == "Dziennik zdarzeń"
    page.get_by_label("Identyfikator agregatu").fill("nie-uuid")
    follow(page, page.get_by_role("button", name="Filtruj"))
    assert page.locator("#err-aggregate").inner_text() == "Podaj identyfikator agregatu (UUID)."
    context.close()


def test_finance_sees_the_books_in_polish(browser: Any, live: LiveApp) -> None:
    """The trial balance, an account's entries and a statement in Polish for a
    finance user with a Polish browser: accounting words, account names,
    money as "98,00 zł"; a lost dispute shows its marker, its status and the
    money the provider took back (issue 18)."""
    seeded = seed(live, title="Księgowość dla webinarów", people={"Ewa Lis": True, "Adam Mazur": True},
                  organizer_name="Biuro Rachunkowe Lis")
    disputed = seeded.people["Adam Mazur"]
    service = live.ledger.service
    service.record_dispute(disputed, dispute_id="dp_pl_1", provider="manual", reference="bank-1",
                           amount=Money.parse("49.00", "PLN"), reason="fraudulent")
    service.record_funds_withdrawn(disputed, dispute_id="dp_pl_1", amount=Money.parse("49.00", "PLN"))
    service.resolve_dispute(disputed, dispute_id="dp_pl_1", outcome="lost")
    live.wait_for_views()
    token = api_tokens.create_token(live.ledger.db, role="finance")
    context = browser.new_context(locale="pl-PL", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_in(page, live, token, language=None)

    page.goto(f"{live.url}/app/books?organizer={seeded.organizer_id}")
    assert page.locator("h1").inner_text() == "Księgi: zestawienie obrotów i sald"
    mark = page.locator(".balance-mark[data-currency=PLN]")
    assert "✓ Zbilansowane" in mark.inner_text() and "Winien 154,35\u00a0zł" in mark.inner_text()
    table = page.locator("table.trial-balance")
    assert [h.strip() for h in table.locator("thead th").all_inner_texts()] == [
        "Organizator", "Waluta", "Konto", "Winien", "Ma", "Saldo"]
    text = table.inner_text()
    assert "środki u operatora: manual" in text and "98,00\u00a0zł" in text
    assert "pieniądze odebrane przez operatorów płatności (spory, wycofania płatności)" in text
    assert "zbilansowane" in table.locator("tfoot").inner_text()
    assert page.get_by_label("Stan na dzień (koniec dnia, UTC)").count() == 1

    follow(page, page.locator("a.account-link", has_text="przychód ze sprzedaży biletów"))
    assert page.locator("h1").inner_text() == "Konto: przychód ze sprzedaży biletów (pieniądze za posiadane bilety)"
    entries = page.locator("table.account-entries tbody tr")
    assert entries.count() == 3  # two payments, the withdrawal
    assert "Ma ticket_revenue 49,00\u00a0zł" in entries.first.inner_text()
    assert "Wn ticket_revenue 49,00\u00a0zł" in entries.last.inner_text()

    page.goto(f"{live.url}/app/books/statement?organizer={seeded.organizer_id}")
    assert page.locator("h1").inner_text() == "Zestawienie: Biuro Rachunkowe Lis"
    row = page.locator("table.statement-table tbody tr[data-currency=PLN]")
    assert row.locator("td[data-label='Wpływy']").inner_text() == "98,00\u00a0zł"
    assert row.locator("td[data-label='Odebrane przez operatorów']").inner_text() == "49,00\u00a0zł"
    assert row.locator("td[data-label='Sprzedaż']").inner_text() == "49,00\u00a0zł"
    assert row.locator(".closing").inner_text() == "46,55\u00a0zł"  # 49,00 of sales minus 2,45 of fee
    assert "Saldo w czasie w PLN" in (page.locator("#balance-chart-pln").text_content() or "")
    shot(page, "24-polish-statement")
    page.goto(f"{live.url}/app/books/statement?organizer={seeded.organizer_id}&as_of=2026-02-30")
    assert page.locator("#err-as_of").inner_text() == "2026-02-30 nie jest poprawną datą kalendarzową"

    page.goto(f"{live.url}/app/events/{seeded.event_id}")
    lost = page.locator(f"#p-{disputed}")
    assert "spór przegrany" in lost.inner_text() and "płatność sporna" in lost.inner_text()
    assert "odebrane przez operatora płatności: 49,00\u00a0zł" in lost.inner_text()
    assert "płatnik wygrał spór z operatorem płatności" in lost.inner_text()
    context.close()
