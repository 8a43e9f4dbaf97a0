"""An organizer in a real browser: sign in, see who paid (R14), confirm and
reject (R14, R15), resend (R12), reschedule (R13) and cancel (R15) behind their
confirmation steps, connect providers (R1–R4); phone width and keyboard."""

from __future__ import annotations

import base64
import csv
import json
import re
import zlib
from typing import Any

import pytest

from ledger import api_tokens
from tests.support.pages import LiveApp, follow, seed, shot, sign_in

pytestmark = pytest.mark.browser

PEOPLE = {"Ada Lovelace": True, "Grace Hopper": True, "Linus Torvalds": False, "Ken Thompson": True}


def row(page: Any, name: str) -> Any:
    return page.locator("table.participants tbody tr", has_text=name)


def test_sign_in_events_list_and_who_paid(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Budżet domowy 2027", people=PEOPLE)
    page.goto(f"{live.url}/app/events")  # not signed in: sent to the login form
    assert "/app/login" in page.url
    shot(page, "01-login")
    page.get_by_label("Access token").fill("ldg_not-a-real-token")
    follow(page, page.get_by_role("button", name="Sign in"))
    error = page.locator("#err-token")
    assert "not valid" in error.inner_text()
    assert page.get_by_label("Access token").get_attribute("aria-describedby") == "err-token"
    shot(page, "02-login-error")

    sign_in(page, live, seeded.token)
    events = page.locator("table.events-table tbody tr", has_text="Budżet domowy 2027")
    assert events.count() == 1
    text = events.inner_text()
    assert "PLN\u00a049.00" in text  # English money format (Babel)
    assert "3 / 50" in text  # three paid of a 50 plan (R9)
    assert "\t46\t" in text  # left: 3 sold and 1 seat held by an open checkout (R9)
    assert "Tue 1 Dec 2037, 18:00 CET" in text  # 17:00 UTC shown in Europe/Warsaw
    shot(page, "03-events")

    follow(page, events.get_by_role("link", name="Budżet domowy 2027"))
    assert page.locator(".tabs a[aria-current=page]").inner_text() == "Paid event"
    assert "fixed" in page.locator("#event-price").locator("..").inner_text()  # R7
    for name, paid in PEOPLE.items():
        cells = row(page, name).inner_text()
        assert ("paid" if paid else "awaiting payment") in cells
        assert ("PLN\u00a049.00" if paid else "PLN\u00a00.00") in cells
    shot(page, "04-who-paid")

    with page.expect_download() as info:
        page.get_by_role("link", name="Download CSV").click()
    with open(info.value.path(), encoding="utf-8") as f:
        rows = {r["name"]: r for r in csv.DictReader(f) if r["registration_id"] != "total"}
    assert set(rows) == set(PEOPLE)
    assert (rows["Ada Lovelace"]["status"], rows["Ada Lovelace"]["paid"], rows["Ada Lovelace"]["fee"]) == (
        "paid", "49.00", "2.45")
    assert rows["Linus Torvalds"]["status"] == "awaiting_payment"


def test_confirm_reject_and_resend(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Kurs Pythona", people=PEOPLE)
    sign_in(page, live, seeded.token)
    page.goto(f"{live.url}/app/events/{seeded.event_id}")

    follow(page, row(page, "Linus Torvalds").get_by_role("button", name="Confirm Linus Torvalds"))
    assert "Participant confirmed" in page.locator(".flashes").inner_text()
    assert "confirmed" in row(page, "Linus Torvalds").locator(".status").inner_text()

    # Reject without a reason: refused, message next to the field, nothing recorded.
    grace = row(page, "Grace Hopper")
    grace.get_by_text("Reject…").click()
    follow(page, grace.get_by_role("button", name="Reject participant"))
    grace = row(page, "Grace Hopper")
    reason = grace.get_by_label("Reason (sent to Grace Hopper)")
    assert reason.get_attribute("aria-invalid") == "true"
    assert "Enter a reason" in grace.locator(".field-error").inner_text()
    assert "paid" in grace.locator(".status").inner_text()
    shot(page, "06-reject-error")

    reason.fill("Duplicate registration")
    follow(page, grace.get_by_role("button", name="Reject participant"))
    grace = row(page, "Grace Hopper")
    assert "refund due" in grace.locator(".status").inner_text()  # paid, then rejected (R15)
    assert "PLN\u00a049.00" in grace.locator("td[data-label='Refund due']").inner_text()
    assert "Duplicate registration" in grace.inner_text()

    follow(page, row(page, "Ada Lovelace").get_by_role("button", name="Resend e-mail to Ada Lovelace"))
    assert "will be sent again" in page.locator(".flashes").inner_text()
    shot(page, "05-who-paid-after-actions")

    registration = live.ledger.service.registration(seeded.people["Ada Lovelace"])
    assert registration.resends == 1  # one click, one request (R12)
    assert live.ledger.service.registration(seeded.people["Grace Hopper"]).status == "refund_due"

    # The registration's page: its full history from the event log.
    follow(page, row(page, "Grace Hopper").get_by_role("link", name="Grace Hopper", exact=True))
    history = [t.strip() for t in page.locator(".timeline .event-type").all_inner_texts()]
    assert history == ["ParticipantRegistered", "PaymentRecorded", "ParticipantRejected"]
    shot(page, "12-registration-history")


def test_reschedule_and_cancel_with_confirmation(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Marketing w sieci", people=PEOPLE)
    sign_in(page, live, seeded.token)
    page.goto(f"{live.url}/app/events/{seeded.event_id}")
    follow(page, page.get_by_role("link", name="Schedule & cancel"))

    page.get_by_label("New start (Europe/Warsaw)").fill("2037-12-08T19:30")
    follow(page, page.get_by_role("button", name="Reschedule…"))
    assert "Tue 8 Dec 2037, 19:30 CET" in page.locator("#new-start").inner_text()
    shot(page, "07-reschedule-confirm")
    unchanged = live.ledger.service.event(seeded.event_id)
    assert unchanged.starts_at == "2037-12-01T17:00:00+00:00"  # nothing happens before "yes"
    follow(page, page.get_by_role("button", name="Yes, reschedule and notify"))
    assert "Rescheduled to Tue 8 Dec 2037, 19:30 CET" in page.locator(".flashes").inner_text()
    assert live.ledger.service.event(seeded.event_id).starts_at == "2037-12-08T18:30:00+00:00"

    follow(page, page.get_by_role("link", name="Cancel event…"))
    follow(page, page.get_by_role("link", name="No, keep it"))  # the confirmation step can be left
    assert live.ledger.service.event(seeded.event_id).status == "scheduled"
    follow(page, page.get_by_role("link", name="Cancel event…"))
    page.get_by_label("Reason (sent to every participant)").fill("The speaker is ill")
    shot(page, "08-cancel-confirm")
    follow(page, page.get_by_role("button", name="Yes, cancel the event"))
    assert "The event is cancelled" in page.locator(".flashes").inner_text()
    assert "cancelled" in page.locator("h1 .status").inner_text()
    for name, paid in PEOPLE.items():
        assert ("refund due" if paid else "cancelled") in row(page, name).locator(".status").inner_text()
    assert page.get_by_role("button", name=re.compile("^Confirm")).count() == 0
    shot(page, "09-cancelled")


def test_provider_connections(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Provider test", people={})
    sign_in(page, live, seeded.token)
    follow(page, page.get_by_role("link", name="Providers"))
    stripe = page.locator("form", has=page.get_by_role("heading", name="Stripe"))
    stripe.get_by_label("Secret or restricted key").fill("rk_test_51AbCdEfGhIjKlMnOp4242")
    # R1: the key alone may connect; a signing secret, when given, must be one.
    stripe.get_by_label("Webhook signing secret").fill("not-a-signing-secret")
    follow(page, stripe.get_by_role("button", name="Connect Stripe"))
    stripe = page.locator("form", has=page.get_by_role("heading", name="Stripe"))
    assert "whsec_" in stripe.locator("#stripe-err-webhook_secret").inner_text()
    assert stripe.get_by_label("Secret or restricted key").input_value() == ""  # secrets never echoed
    stripe.get_by_label("Secret or restricted key").fill("rk_test_51AbCdEfGhIjKlMnOp4242")
    stripe.get_by_label("Webhook signing secret").fill("whsec_0123456789abcdefXYZ9")
    follow(page, stripe.get_by_role("button", name="Connect Stripe"))
    assert "Stripe connected" in page.locator(".flashes").inner_text()
    table = page.locator("table.connections").inner_text()
    assert "rk_test_…4242" in table and "whsec_…XYZ9" in table
    assert "51AbCdEf" not in page.content()
    shot(page, "13-providers")


def test_contact_email_set_refused_and_removed(page: Any, live: LiveApp) -> None:
    """The organizer's contact address (disputes, reversals and failed refunds
    are written there) from the providers page, as PUT /v1/organizers/{org}/contact."""
    seeded = seed(live, title="Contact test", people={})
    sign_in(page, live, seeded.token)
    follow(page, page.get_by_role("link", name="Providers"))
    page.locator("#contact-email").fill("not an address")
    follow(page, page.get_by_role("button", name="Save contact e-mail"))
    assert "must be an e-mail address" in page.locator("#contact-err-email").inner_text()
    assert page.locator("#contact-email").get_attribute("aria-invalid") == "true"
    assert live.ledger.service.organizer(seeded.organizer_id).email is None  # nothing recorded
    page.locator("#contact-email").fill("  billing@example.com ")
    follow(page, page.get_by_role("button", name="Save contact e-mail"))
    assert "Contact e-mail saved." in page.locator(".flashes").inner_text()
    assert page.locator("#contact-email").input_value() == "billing@example.com"
    assert live.ledger.service.organizer(seeded.organizer_id).email == "billing@example.com"
    page.locator("#contact-email").fill("")
    follow(page, page.get_by_role("button", name="Save contact e-mail"))
    assert "Contact e-mail removed." in page.locator(".flashes").inner_text()
    assert live.ledger.service.organizer(seeded.organizer_id).email is None


def test_phone_width_and_keyboard(phone: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Webinar na telefonie", people=PEOPLE)
    phone.goto(f"{live.url}/app/language/en?next=/app/login")  # the seeded organizer is Polish
    phone.get_by_label("Access token").tap()
    phone.keyboard.type(seeded.token)
    follow(phone, lambda: phone.keyboard.press("Enter"))  # submits the form: no pointer needed
    phone.wait_for_selector("text=Signed in as")
    shot(phone, "15-phone-events")
    phone.goto(f"{live.url}/app/events/{seeded.event_id}")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
    linus = row(phone, "Linus Torvalds")
    assert linus.locator("td[data-label='Paid']").is_visible()
    shot(phone, "14-phone-who-paid")

    # Keyboard only: Tab to Linus's Confirm button and press Enter.
    button = linus.get_by_role("button", name="Confirm Linus Torvalds")
    for _ in range(60):
        phone.keyboard.press("Tab")
        if button.evaluate("b => b === document.activeElement"):
            break
    else:
        raise AssertionError("the Confirm button cannot be reached with Tab")
    outline = button.evaluate("b => getComputedStyle(b).outlineStyle")
    assert outline != "none"  # a visible focus ring
    follow(phone, lambda: phone.keyboard.press("Enter"))
    assert "confirmed" in row(phone, "Linus Torvalds").locator(".status").inner_text()


def test_session_cookie_csrf_and_once_only_forms(page: Any, live: LiveApp) -> None:
    seeded = seed(live, title="Security", people={"Eve Example": False, "Max Paid": True})
    sign_in(page, live, seeded.token)
    cookie = next(c for c in page.context.cookies() if c["name"] == "ledger_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/app"
    payload = cookie["value"].lstrip(".").split(".")[0]
    data = json.loads(zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))
    assert seeded.token not in json.dumps(data)
    assert data["th"] == api_tokens.hash_token(seeded.token)

    # A cross-site style POST (no CSRF token) is refused and records nothing.
    registration_id = seeded.people["Eve Example"]
    response = page.request.post(f"{live.url}/app/registrations/{registration_id}/confirm",
                                 form={"form_key": "x" * 16})
    assert response.status == 400
    assert live.ledger.service.registration(registration_id).status == "awaiting_payment"

    # The same form sent twice (double click, reload of the POST): recorded once,
    # the second answered with the first one's outcome.
    page.goto(f"{live.url}/app/events/{seeded.event_id}")
    form = row(page, "Max Paid").locator("form", has=page.get_by_role("button", name="Resend e-mail to Max Paid"))
    fields = {name: form.locator(f"input[name={name}]").input_value() for name in
              ("csrf_token", "form_key", "next", "view")}
    target = f"{live.url}/app/registrations/{seeded.people['Max Paid']}/resend"
    first = page.request.post(target, form=fields, max_redirects=0)
    second = page.request.post(target, form=fields, max_redirects=0)
    assert first.status == second.status == 303
    assert first.headers["location"] == second.headers["location"]
    assert live.ledger.service.registration(seeded.people["Max Paid"]).resends == 1
