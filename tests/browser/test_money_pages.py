"""Issue 12 in a real browser: the event page shows what is owed back (R17),
the registration page records a second payment and a goodwill refund that
keeps the ticket (R19, the page asks), and the fee report shows owed back and
each line's fee policy (R18)."""

from __future__ import annotations

from typing import Any

import pytest

from ledger import api_tokens
from ledger.scope import ANYONE
from tests.support.pages import LiveApp, follow, seed, shot, sign_in

pytestmark = pytest.mark.browser


def figure(page: Any, name: str) -> str:
    return str(page.locator(f"#event-money [data-figure={name}]").inner_text())


def test_event_page_shows_what_a_cancelled_event_owes_back(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Odwołany kurs", people={"Anna Nowak": True, "Piotr Wiśniewski": True,
                                                       "Jan Kowalski": False})
    sign_in(page, live, seeded.token)
    page.goto(f"{live.url}/app/events/{seeded.event_id}")
    assert (figure(page, "gross"), figure(page, "refund_due"), figure(page, "fee")) == (
        "PLN\u00a098.00", "PLN\u00a00.00", "PLN\u00a04.90")
    live.ledger.service.cancel_event(seeded.event_id, reason="Choroba", scope=ANYONE)
    live.wait_for_views()
    page.reload()
    assert (figure(page, "gross"), figure(page, "refund_due"), figure(page, "fee")) == (
        "PLN\u00a098.00", "PLN\u00a098.00", "PLN\u00a00.00")  # the first release: fee 4.90, nothing owed shown
    assert "owed" in (page.locator("#event-money [data-figure=refund_due]").get_attribute("class") or "")
    shot(page, "15-event-owed-back")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    last = open(info.value.path(), encoding="utf-8").read().strip().splitlines()[-1]
    assert last.startswith("total,3 participants,") and ",98.00,0.00,98.00,0.00," in last


def test_registration_page_records_a_second_payment_and_a_goodwill_refund(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Kurs Excela", people={"Ada Lovelace": True})
    rid = seeded.people["Ada Lovelace"]
    sign_in(page, live, seeded.token)
    page.goto(f"{live.url}/app/registrations/{rid}")

    form = page.locator("#payment-form")
    form.get_by_label("Amount (PLN)").fill("49.00")
    form.get_by_label("Method").fill("przelew bankowy")
    form.get_by_label("Reference").fill("przelew-2")
    follow(page, form.get_by_role("button", name="Record payment"))
    assert "Payment recorded" in page.locator(".flashes").inner_text()
    assert "paid" in page.locator("h1 .status").inner_text()
    assert page.locator("#reg-refund-due").inner_text() == "PLN\u00a049.00"  # the second payment is owed back
    assert "przelew bankowy" in page.locator("#payments").inner_text()

    form = page.locator("#refund-form")
    form.get_by_label("Amount (PLN)").fill("59.00")
    form.get_by_label("Refund reference at the provider").fill("zwrot-1")
    form.get_by_label("Keep the ticket and Join link (goodwill refund)").check()
    follow(page, form.get_by_role("button", name="Record refund"))
    assert "Refund recorded" in page.locator(".flashes").inner_text()
    # 49.00 owed back first, then 10.00 from the ticket: still paid, nothing owed.
    assert "paid" in page.locator("h1 .status").inner_text()
    assert page.locator("#reg-refund-due").inner_text() == "PLN\u00a00.00"
    assert page.locator("#reg-ticket-money").inner_text() == "PLN\u00a039.00"
    assert "kept" in page.locator("#refunds").inner_text()
    shot(page, "16-goodwill-refund")

    form = page.locator("#refund-form")
    form.get_by_label("Amount (PLN)").fill("100.00")
    form.get_by_label("Refund reference at the provider").fill("zwrot-2")
    follow(page, form.get_by_role("button", name="Record refund"))
    assert "can be refunded" in page.locator("#refund-form").inner_text()  # at most 39.00 is left

    form = page.locator("#refund-form")
    form.get_by_label("Amount (PLN)").fill("39.00")
    form.get_by_label("Refund reference at the provider").fill("zwrot-3")
    follow(page, form.get_by_role("button", name="Record refund"))  # the default: nothing left, access ends
    assert "refunded" in page.locator("h1 .status").inner_text()
    assert "ended" in page.locator("#refunds").inner_text()


def test_fee_report_page_shows_owed_back_and_the_policy(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Raport", people={"Ewa Zielińska": True, "Jan Kowalski": True})
    live.ledger.service.reject(seeded.people["Jan Kowalski"], reason="Duplikat", scope=ANYONE)
    live.wait_for_views()
    sign_in(page, live, api_tokens.create_token(live.ledger.db, role="finance"))
    page.get_by_label("Organizer id").fill(seeded.organizer_id)
    follow(page, page.get_by_role("button", name="Show"))
    header = page.locator("table.fees-table thead").inner_text()
    assert "Owed back" in header and "Policy" in header
    (row,) = page.locator("table.fees-table tbody tr").all()
    cells = row.inner_text()
    assert "fee-v2" in cells and "PLN\u00a049.00" in cells  # owed back to the rejected participant
    total = page.locator("table.fees-table tfoot").inner_text()
    assert "PLN\u00a098.00" in total and "PLN\u00a049.00" in total and "PLN\u00a02.45" in total


def test_who_paid_records_a_payment_and_a_partial_refund(page: Any, live: LiveApp) -> None:
    """Issue 13, item 5: from the who-paid tab, a payment seen outside the
    providers (a bank transfer) and a partial goodwill refund (R17, R19)."""
    seeded = seed(live, title="Przelewy ręczne", people={"Maria Skłodowska": False})
    sign_in(page, live, seeded.token)
    page.goto(f"{live.url}/app/events/{seeded.event_id}")
    row = page.locator(f"#p-{seeded.people['Maria Skłodowska']}")
    assert row.get_by_role("link", name="Record a refund to Maria Skłodowska").count() == 0  # nothing paid yet
    follow(page, row.get_by_role("link", name="Record a payment from Maria Skłodowska"))
    form = page.locator("#payment-form")
    assert "The ticket costs PLN\u00a049.00." in form.inner_text()
    form.get_by_label("Amount (PLN)").fill("49.00")
    form.get_by_label("Received through").select_option("manual")
    form.get_by_label("Method").fill("przelew bankowy")
    form.get_by_label("Reference").fill("przelew-maria")
    shot(page, "19-record-payment")
    follow(page, form.get_by_role("button", name="Record payment"))
    assert page.url.endswith(f"/app/events/{seeded.event_id}")  # back on who paid
    assert "Payment recorded" in page.locator(".flashes").inner_text()
    row = page.locator(f"#p-{seeded.people['Maria Skłodowska']}")
    assert "paid" in row.locator(".status").inner_text()
    assert row.locator("td[data-label='Paid']").inner_text() == "PLN\u00a049.00"

    follow(page, row.get_by_role("link", name="Record a refund to Maria Skłodowska"))
    form = page.locator("#refund-form")
    form.get_by_label("Amount (PLN)").fill("60.00")
    form.get_by_label("Refund reference at the provider").fill("zwrot-maria")
    follow(page, form.get_by_role("button", name="Record refund"))
    amount = page.locator("#refund-form").get_by_label("Amount (PLN)")
    assert amount.get_attribute("aria-invalid") == "true"  # more than was paid: refused next to the field
    assert page.locator("#refund-form .field-error").count() == 1
    assert amount.input_value() == "60.00"

    form = page.locator("#refund-form")
    form.get_by_label("Amount (PLN)").fill("10.00")
    form.get_by_label("Keep the ticket and Join link (goodwill refund)").check()
    shot(page, "20-record-partial-refund")
    follow(page, form.get_by_role("button", name="Record refund"))
    assert "Refund recorded" in page.locator(".flashes").inner_text()
    row = page.locator(f"#p-{seeded.people['Maria Skłodowska']}")
    assert "paid" in row.locator(".status").inner_text()  # a partial refund keeps the ticket
    assert row.locator("td[data-label='Refunded']").inner_text() == "PLN\u00a010.00"
    assert row.locator("td[data-label='Refund due']").inner_text() == "PLN\u00a00.00"
    shot(page, "21-who-paid-after-refund")
