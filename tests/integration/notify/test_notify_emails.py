"""What each participant e-mail says (R11–R15): link, token, dates in the event's
time zone, amounts, language, headers — as received by a real SMTP server."""

from __future__ import annotations

from email.utils import parsedate_to_datetime

from ledger import access_tokens
from ledger.event_log import event_id
from tests.support.notify_world import World, running
from tests.support.smtp import SmtpTestServer
from tests.support.waiting import wait_until


def test_payment_confirmation_in_english(world: World, smtp_server: SmtpTestServer) -> None:
    org = world.organizer(country="US", name="Acme Webinars")
    ev = world.event(org, title="Pricing 101", price="49.00", currency="USD",
                     timezone="America/New_York", starts=("2037-12-01T23:00:00+00:00",))
    rid = world.register(ev, "ann@example.com", name="Ann Example")
    with running(world.ledger):
        world.pay(rid)
        [mail] = smtp_server.wait_for(1)
    token = world.token(rid)
    join_url = f"http://ledger.test/join/{token}"
    registration = world.ledger.service.registration(rid)

    assert mail.rcpt_tos == ["ann@example.com"]
    assert mail.mail_from == "no-reply@ledger.test"
    assert str(mail.message["To"]) == "Ann Example <ann@example.com>"
    assert mail.subject == "Your ticket for “Pricing 101”"
    # Message-ID derived from the PaymentRecorded event: stable across re-sends.
    payment_event = event_id(rid, registration.version)
    assert mail.message_id == f"<confirmation.{payment_event}.{rid}@ledger.test>"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message["Content-Language"] == "en"
    assert mail.message.get_content_type() == "multipart/alternative"
    assert parsedate_to_datetime(mail.message["Date"]) == registration.modified_on.replace(microsecond=0)
    for body in (mail.text, mail.html):
        assert "Tuesday, 1 December 2037, 18:00 EST (America/New_York, UTC-05:00)" in body
        assert "49.00 USD" in body
        assert token in body
        assert join_url in body
    assert f'href="{join_url}"' in mail.html
    assert "Hello Ann Example," in mail.text
    assert "Acme Webinars via Webinar Ledger" in mail.text
    with world.ledger.db.transaction() as conn:
        assert access_tokens.find(conn, token) == access_tokens.Access(rid, ev)


def test_polish_organizer_writes_polish_unless_the_participant_chose_english(
    world: World, smtp_server: SmtpTestServer
) -> None:
    org = world.organizer(country="PL", name="Szkolenia Sp. z o.o.")
    ev = world.event(org, title="Podatki 2027", price="120.50", currency="PLN",
                     timezone="Europe/Warsaw", starts=("2037-12-01T17:00:00+00:00",))
    polish = world.register(ev, "jan@example.pl", name="Jan Kowalski")
    english = world.register(ev, "john@example.com", name="John Smith", language="en")
    with running(world.ledger):
        world.pay(polish)
        world.pay(english)
        smtp_server.wait_for(2)
    [pl] = smtp_server.to("jan@example.pl")
    [en] = smtp_server.to("john@example.com")

    assert pl.subject == "Twój bilet na „Podatki 2027”"
    assert pl.message["Content-Language"] == "pl"
    assert "Dzień dobry Jan Kowalski," in pl.text
    assert "wtorek, 1 grudnia 2037, 18:00 CET (Europe/Warsaw, UTC+01:00)" in pl.text
    assert "120,50 PLN" in pl.text and "120,50 PLN" in pl.html
    assert "Twój osobisty token dostępu" in pl.text
    assert world.token(polish) in pl.text
    assert "Szkolenia Sp. z o.o. przez Webinar Ledger" in str(pl.message["From"])

    assert en.subject == "Your ticket for “Podatki 2027”"
    assert "Tuesday, 1 December 2037, 18:00 CET (Europe/Warsaw, UTC+01:00)" in en.text
    assert "120.50 PLN" in en.text


def test_paid_and_confirmed_is_one_email_and_resend_repeats_it(world: World,
                                                               smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org)
    rid = world.register(ev, "bo@example.com", name="Bo")
    only_confirmed = world.register(ev, "cy@example.com", name="Cy")
    with running(world.ledger):
        world.pay(rid)
        world.confirm(rid)  # R11: paid *and* confirmed, still one confirmation
        world.confirm(only_confirmed)  # R14: confirmed by hand without payment
        smtp_server.wait_for(2)
        world.resend(rid)  # R12
        smtp_server.wait_for(3)
        mails = smtp_server.settle()
    assert len(mails) == 3
    first, again = smtp_server.to("bo@example.com")
    assert again.subject == "Your ticket for “Pricing 101” (sent again)"
    assert again.message_id != first.message_id and again.message_id.startswith("<resend.")
    token = world.token(rid)
    assert token in first.text and token in again.text  # re-derivable: same access
    assert "The organizer asked us to send you this confirmation again." in again.text
    [cy] = smtp_server.to("cy@example.com")
    assert "Acme Webinars has confirmed your place at “Pricing 101”." in cy.text
    assert "Amount paid" not in cy.text
    assert world.token(only_confirmed) in cy.text


def test_reschedule_notifies_every_open_registration_in_the_event_time_zone(
    world: World, smtp_server: SmtpTestServer
) -> None:
    org = world.organizer()
    ev = world.event(org, title="Tokyo Night", timezone="Asia/Tokyo",
                     starts=("2037-12-01T11:00:00+00:00",))
    paid = world.register(ev, "paid@example.com")
    waiting = world.register(ev, "waiting@example.com")
    rejected = world.register(ev, "rejected@example.com")
    with running(world.ledger):
        world.pay(paid)
        world.reject(rejected)
        world.reschedule(ev, "2038-01-15T09:30:00+00:00")
        smtp_server.wait_for(4)
        smtp_server.settle()

    assert [m.subject for m in smtp_server.to("rejected@example.com")] == [
        "Your registration for “Tokyo Night” was declined"]  # closed: no reschedule notice
    [_, moved] = smtp_server.to("paid@example.com")
    [waiting_moved] = smtp_server.to("waiting@example.com")
    assert moved.subject == "New date for “Tokyo Night”"
    assert moved.message_id.startswith("<reschedule.") and paid in moved.message_id
    assert "New date: Friday, 15 January 2038, 18:30 JST (Asia/Tokyo, UTC+09:00)" in moved.text
    assert "Previous date: Tuesday, 1 December 2037, 20:00 JST (Asia/Tokyo, UTC+09:00)" in moved.text
    assert "Your Join link and access token stay the same." in moved.text
    assert "Your registration stays as it is." in waiting_moved.text
    assert waiting_moved.message_id != moved.message_id
    assert world.token(waiting) not in waiting_moved.text  # no ticket yet, so no token to show


def test_cancellation_and_rejection_say_what_is_owed_back(world: World,
                                                         smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org, title="Money Talk", price="75.25")
    paid = world.register(ev, "paid@example.com")
    unpaid = world.register(ev, "unpaid@example.com")
    rejected = world.register(ev, "rejected@example.com")
    with running(world.ledger):
        world.pay(paid)
        world.pay(rejected)
        world.reject(rejected, reason="Duplicate account")
        world.cancel(ev, reason="Speaker is ill")
        smtp_server.wait_for(5)
        smtp_server.settle()

    [_, rejection] = smtp_server.to("rejected@example.com")
    assert rejection.subject == "Your registration for “Money Talk” was declined"
    assert "Reason: Duplicate account" in rejection.text
    assert ("You paid 75.25 USD. Refunds are not automatic: Acme Webinars owes you 75.25 USD "
            "and will refund it the same way you paid.") in rejection.text
    assert "no longer work" in rejection.text

    [_, cancelled] = smtp_server.to("paid@example.com")
    assert cancelled.subject == "“Money Talk” has been cancelled"
    assert "Reason: Speaker is ill" in cancelled.text and "Speaker is ill" in cancelled.html
    assert "owes you 75.25 USD" in cancelled.text and "owes you 75.25 USD" in cancelled.html
    [unpaid_cancelled] = smtp_server.to("unpaid@example.com")
    assert "No payment was taken for your registration" in unpaid_cancelled.text
    assert "no longer work" not in unpaid_cancelled.text
    assert unpaid in unpaid_cancelled.message_id


def test_permanent_event_confirmation_lists_every_session(world: World, smtp_server: SmtpTestServer) -> None:
    org = world.organizer(country="PL", name="Akademia")
    ev = world.event(org, title="Kurs", currency="PLN", price="300.00", timezone="Europe/Warsaw",
                     permanent=True, starts=("2037-10-20T16:00:00+00:00", "2037-11-03T17:00:00+00:00"))
    rid = world.register(ev, "ola@example.pl", name="Ola")
    with running(world.ledger):
        world.pay(rid)
        [mail] = smtp_server.wait_for(1)
    assert "wtorek, 20 października 2037, 18:00 CEST (Europe/Warsaw, UTC+02:00)" in mail.text
    assert "wtorek, 3 listopada 2037, 18:00 CET (Europe/Warsaw, UTC+01:00)" in mail.text
    assert "jedna płatność daje dostęp do wszystkich sesji" in mail.text  # R10
    wait_until(lambda: world.outbox()[0]["state"] == "sent", what="the row to be marked sent")
