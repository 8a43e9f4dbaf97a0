"""Issue 13, item 4 in a real browser: an organizer with no Stripe connection
creates a paid event and connects Stripe on the same form (the help article's
"while creating a new paid event", R1); the form states each currency's
maximum (R6), which currencies only one provider takes (R3, R6) and that the
price is fixed (R7); a refused price is shown next to its field and writes
nothing (no connection either)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.conftest import BROWSER_STRIPE_KEY
from tests.support.pages import LiveApp, follow, seed, shot, sign_in

pytestmark = pytest.mark.browser


def test_create_a_paid_event_connecting_stripe_on_the_way(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Istniejące wydarzenie", people={})  # a Polish organizer, manual only
    sign_in(page, live, seeded.token)
    follow(page, page.get_by_role("link", name="Create a paid event"))
    form = page.locator("#create-event")
    text = form.inner_text()
    assert "The price can never be changed after the event is created." in text
    notes = page.locator("#currency-notes").inner_text()
    assert "BGN, HUF, RON can be paid only through Stripe." in notes
    assert "PayU accepts PLN only." in notes
    assert "R6" not in text and "R7" not in text
    options = page.locator("#currency option").all_inner_texts()
    assert "EUR — at most €2,000.00" in options and "PLN — at most PLN\u00a08,000.00" in options

    form.get_by_label("Title").fill("Kurs Stripe")
    form.get_by_label("First session (date and time)").fill("2020-12-01T18:00")
    form.get_by_label("Ticket price").fill("2500.00")
    form.get_by_label("Currency").select_option("EUR")
    form.get_by_label("Stripe").check()
    form.get_by_label("Secret or restricted key").fill(BROWSER_STRIPE_KEY)
    form.get_by_label("Webhook signing secret").fill("whsec_0123456789abcdefXYZ9")
    follow(page, form.get_by_role("button", name="Create the event"))
    amount = page.get_by_label("Ticket price")
    assert amount.get_attribute("aria-invalid") == "true"
    assert "err-amount" in (amount.get_attribute("aria-describedby") or "")
    assert page.locator("#err-amount").inner_text() == "The highest ticket price in EUR is €2,000.00."
    assert page.locator("#err-session-1").inner_text() == "This date is in the past."  # every mistake at once
    assert page.get_by_label("Title").input_value() == "Kurs Stripe"  # what was typed is kept
    assert page.get_by_label("Secret or restricted key").input_value() == ""  # never a secret
    assert live.ledger.service.organizer(seeded.organizer_id).connection_for("stripe") is None
    shot(page, "17-create-event-error")

    form = page.locator("#create-event")
    form.get_by_label("First session (date and time)").fill("2037-12-01T18:00")
    form.get_by_label("Ticket price").fill("49.00")
    form.get_by_label("Secret or restricted key").fill(BROWSER_STRIPE_KEY)
    form.get_by_label("Webhook signing secret").fill("whsec_0123456789abcdefXYZ9")
    form.get_by_label("Permanent event: paid once, the payment gives access to every session").check()
    page.locator("details", has=page.get_by_text("More sessions")).locator("summary").click()
    form.get_by_label("Session 2", exact=True).fill("2037-12-08T18:00")
    follow(page, form.get_by_role("button", name="Create the event"))
    assert "Event created" in page.locator(".flashes").inner_text()
    assert page.locator("h1").inner_text().startswith("Kurs Stripe")
    assert page.locator("#event-price").inner_text() == "€49.00"
    header = page.locator("dl.facts").inner_text()
    assert "permanent" in header and "Stripe" in header
    shot(page, "18-event-created")

    organizer = live.ledger.service.organizer(seeded.organizer_id)
    assert organizer.connection_for("stripe") is not None
    follow(page, page.get_by_role("navigation", name="Main").get_by_role("link", name="Events"))
    assert page.locator("table.events-table").inner_text().count("Kurs Stripe") == 1


def test_the_create_form_sent_twice_creates_one_event(page: Any, live: LiveApp) -> None:
    """A double click or a resent POST: the same form key answers with the
    same event (ids derived from the key), never a second one."""
    seeded = seed(live, title="Pierwsze", people={})
    sign_in(page, live, seeded.token)
    page.goto(f"{live.url}/app/events/new")
    form = {name: page.locator(f"#create-event input[name={name}]").input_value()
            for name in ("csrf_token", "form_key")}
    form.update({"title": "Dwa kliknięcia", "timezone": "Europe/Warsaw", "session-1": "2037-12-01T18:00",
                 "amount": "49.00", "currency": "PLN", "provider": "manual"})
    answers = [page.request.post(f"{live.url}/app/events/new", form=form, max_redirects=0) for _ in range(2)]
    assert [a.status for a in answers] == [303, 303]
    assert answers[0].headers["location"] == answers[1].headers["location"]
    follow(page, lambda: page.goto(f"{live.url}/app/events"))
    assert page.locator("table.events-table").inner_text().count("Dwa kliknięcia") == 1


def test_create_form_fits_a_phone(phone: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Telefon", people={})
    sign_in(phone, live, seeded.token)
    phone.goto(f"{live.url}/app/events/new")
    phone.locator("details", has=phone.get_by_text("Maximum price per currency")).locator("summary").tap()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the form scrolls sideways on a phone ({width}px)"
