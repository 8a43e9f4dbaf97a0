"""The participant e-mails (R11–R15, R17, R19) and the organizer's (disputes,
reversals, failed refunds: issue 18) in English and Polish, as plain text and HTML.

Each e-mail is written once as a list of blocks (paragraphs, facts, a Join
button, the token…) and rendered twice, so the text and HTML parts always say
the same thing.  Rendering is a pure function of the stored context, the join
URL and the token: a re-send after a crash produces the very same e-mail.

Dates are shown in the event's own time zone (``PaidEvent.timezone``, an IANA
name) with the offset spelled out; amounts are exact decimal strings from
:class:`ledger.money.Money`, never floats (R8).  Samples: docs/emails.md.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ledger.money import Money

LANGUAGES = ("en", "pl")

_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "pl": ("poniedziałek", "wtorek", "środa", "czwartek", "piątek", "sobota", "niedziela"),
}
_MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "pl": ("stycznia", "lutego", "marca", "kwietnia", "maja", "czerwca", "lipca", "sierpnia",
           "września", "października", "listopada", "grudnia"),  # genitive: "1 grudnia 2026"
}

#: Phrases per language.  ``{placeholders}`` are filled with already formatted values.
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hello {name},",
        "sign": "{organizer} via Webinar Ledger",
        "when": "When", "sessions": "Sessions", "new_date": "New date", "previous_date": "Previous date",
        "amount_paid": "Amount paid", "reason": "Reason",
        "confirmation.subject": "Your ticket for “{title}”",
        "resend.subject": "Your ticket for “{title}” (sent again)",
        "paid": "we have received your payment of {paid} for “{title}”. Your place is confirmed.",
        "confirmed": "{organizer} has confirmed your place at “{title}”.",
        "resent": "The organizer asked us to send you this confirmation again. "
                  "Your Join link and access token are the same as before.",
        "permanent": "This is a permanent event: your one payment gives access to every session "
                     "of the series.",
        "join": "Join the webinar", "join_link": "Join link", "token": "Your personal access token",
        "keep": "Keep this e-mail: the link and the token let you join at any time. "
                "Do not share them, they are personal.",
        "reschedule.subject": "New date for “{title}”",
        "rescheduled": "{organizer} has moved “{title}”.",
        "ticket_unchanged": "Your Join link and access token stay the same.",
        "registration_unchanged": "Your registration stays as it is.",
        "cancellation.subject": "“{title}” has been cancelled",
        "cancelled": "{organizer} has cancelled “{title}”.",
        "rejection.subject": "Your registration for “{title}” was declined",
        "rejected": "{organizer} has declined your registration for “{title}”.",
        "refund_due": "You paid {paid}. Refunds are not automatic: {organizer} owes you {refund_due} "
                      "and will refund it {via}. If it does not arrive, please contact the organizer.",
        "refunded": "Your payment of {paid} has already been refunded.",
        "nothing_paid": "No payment was taken for your registration, so there is nothing to refund.",
        "access_ends": "Any Join link and access token for this event no longer work.",
        "via.stripe": "through Stripe", "via.paypal": "through PayPal", "via.payu": "through PayU",
        "via.manual": "the same way you paid",
        "owed_back.subject": "Money owed back to you for “{title}”",
        "owed.no_seat": "we received your payment of {payment} for “{title}”, but it arrived when no seat "
                        "was left, so it bought no ticket.",
        "owed.event_cancelled": "we received your payment of {payment} for “{title}” after the event was "
                                "cancelled.",
        "owed.rejected": "we received your payment of {payment} for “{title}” after your registration was "
                         "declined.",
        "owed.closed": "we received your payment of {payment} for “{title}” after your registration was closed.",
        "owed.paid_twice": "we received another payment of {payment} for “{title}”. Your ticket was already "
                           "paid, so this payment bought nothing.",
        "owed.excess": "we received your payment of {payment} for “{title}”. In all you paid {paid}, more "
                       "than the price of {price}. Your place is confirmed.",
        "payment": "Payment", "owed": "Owed back to you", "refunded_label": "Refunded",
        "owed_total": "Refunds are not automatic: {organizer} owes you {owed} and will refund it {via}. "
                      "If it does not arrive, please contact the organizer.",
        "ticket_stays": "Your ticket, Join link and access token stay valid.",
        "refund.subject": "Refund for “{title}”",
        "refund_recorded": "{organizer} has refunded {refund} to you {via}.",
        "still_owed": "{organizer} still owes you {owed}.",
        "all_refunded": "Everything you paid ({paid}) has now been refunded.",
    },
    "pl": {
        "greeting": "Dzień dobry {name},",
        "sign": "{organizer} przez Webinar Ledger",
        "when": "Termin", "sessions": "Terminy sesji", "new_date": "Nowy termin",
        "previous_date": "Poprzedni termin", "amount_paid": "Zapłacono", "reason": "Powód",
        "confirmation.subject": "Twój bilet na „{title}”",
        "resend.subject": "Twój bilet na „{title}” (wysłany ponownie)",
        "paid": "otrzymaliśmy Twoją płatność {paid} za „{title}”. Twoje miejsce jest potwierdzone.",
        "confirmed": "organizator {organizer} potwierdził Twoje miejsce na „{title}”.",
        "resent": "Organizator poprosił o ponowne wysłanie tego potwierdzenia. "
                  "Twój link i token dostępu są takie same jak wcześniej.",
        "permanent": "To wydarzenie stałe: jedna płatność daje dostęp do wszystkich sesji z serii.",
        "join": "Dołącz do webinaru", "join_link": "Link do dołączenia",
        "token": "Twój osobisty token dostępu",
        "keep": "Zachowaj tę wiadomość: link i token pozwalają dołączyć w dowolnym momencie. "
                "Nie udostępniaj ich nikomu, są osobiste.",
        "reschedule.subject": "Nowy termin: „{title}”",
        "rescheduled": "organizator {organizer} zmienił termin wydarzenia „{title}”.",
        "ticket_unchanged": "Twój link i token dostępu pozostają bez zmian.",
        "registration_unchanged": "Twoja rejestracja pozostaje bez zmian.",
        "cancellation.subject": "Wydarzenie „{title}” zostało odwołane",
        "cancelled": "organizator {organizer} odwołał wydarzenie „{title}”.",
        "rejection.subject": "Twoja rejestracja na „{title}” została odrzucona",
        "rejected": "organizator {organizer} odrzucił Twoją rejestrację na „{title}”.",
        "refund_due": "Zapłacono {paid}. Zwrot nie następuje automatycznie: organizator {organizer} "
                      "zwróci Ci {refund_due} {via}. Jeśli zwrot nie dotrze, skontaktuj się "
                      "z organizatorem.",
        "refunded": "Twoja płatność {paid} została już zwrócona.",
        "nothing_paid": "Za Twoją rejestrację nie pobrano płatności, więc nie ma czego zwracać.",
        "access_ends": "Link do dołączenia i token dostępu do tego wydarzenia przestały działać.",
        "via.stripe": "przez Stripe", "via.paypal": "przez PayPal", "via.payu": "przez PayU",
        "via.manual": "tą samą drogą, którą została wniesiona płatność",
        "owed_back.subject": "Kwota do zwrotu za „{title}”",
        "owed.no_seat": "otrzymaliśmy Twoją płatność {payment} za „{title}”, ale wpłynęła, gdy nie było już "
                        "wolnych miejsc, więc nie kupiła biletu.",
        "owed.event_cancelled": "otrzymaliśmy Twoją płatność {payment} za „{title}” po odwołaniu wydarzenia.",
        "owed.rejected": "otrzymaliśmy Twoją płatność {payment} za „{title}” po odrzuceniu Twojej rejestracji.",
        "owed.closed": "otrzymaliśmy Twoją płatność {payment} za „{title}” po zamknięciu Twojej rejestracji.",
        "owed.paid_twice": "otrzymaliśmy kolejną płatność {payment} za „{title}”. Twój bilet był już "
                           "opłacony, więc ta płatność niczego nie kupiła.",
        "owed.excess": "otrzymaliśmy Twoją płatność {payment} za „{title}”. Łącznie zapłacono {paid}, więcej "
                       "niż wynosi cena {price}. Twoje miejsce jest potwierdzone.",
        "payment": "Płatność", "owed": "Do zwrotu", "refunded_label": "Zwrócono",
        "owed_total": "Zwrot nie następuje automatycznie: organizator {organizer} zwróci Ci {owed} {via}. "
                      "Jeśli zwrot nie dotrze, skontaktuj się z organizatorem.",
        "ticket_stays": "Twój bilet, link do dołączenia i token dostępu pozostają ważne.",
        "refund.subject": "Zwrot za „{title}”",
        "refund_recorded": "organizator {organizer} zwrócił Ci {refund} {via}.",
        "still_owed": "Organizator {organizer} ma Ci jeszcze do zwrotu {owed}.",
        "all_refunded": "Cała wpłacona kwota ({paid}) została zwrócona.",
    },
}


#: The From name of the e-mails to organizers (they come from the platform).
ORGANIZER_SENDER = "Webinar Ledger"

#: The e-mails to the organizer about provider corrections (issue 18 item 2).
ORGANIZER_KINDS = ("organizer_dispute_opened", "organizer_funds_withdrawn", "organizer_dispute_won",
                   "organizer_dispute_lost", "organizer_payment_reversed", "organizer_refund_failed")

#: Their phrases, per language (the organizer's: Polish for an organizer in Poland).
ORGANIZER_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "greeting": "Hello {organizer},",
        "organizer_dispute_opened.subject": "Payment disputed: “{title}”",
        "organizer_funds_withdrawn.subject": "Money withdrawn for a dispute: “{title}”",
        "organizer_dispute_won.subject": "Dispute won: “{title}”",
        "organizer_dispute_lost.subject": "Dispute lost: “{title}”",
        "organizer_payment_reversed.subject": "Payment reversed: “{title}”",
        "organizer_refund_failed.subject": "Refund failed: “{title}”",
        "organizer_dispute_opened": "A payment of {amount} for “{title}” was disputed with {provider}. "
                                    "No money has moved yet.",
        "organizer_dispute_opened.next": "Answer the dispute in your {provider} account before the deadline "
                                         "it gives. The participant's ticket and access stay valid for now.",
        "organizer_funds_withdrawn": "{provider} took {amount} from your balance for the dispute about a "
                                     "payment for “{title}”.",
        "organizer_funds_withdrawn.next": "This money no longer counts as ticket sales. The ticket stays valid "
                                          "until the dispute is decided; if you win it, the money usually "
                                          "comes back.",
        "organizer_dispute_won": "The dispute about a payment for “{title}” was decided in your favour: you "
                                 "keep the money.",
        "organizer_dispute_lost": "The dispute about a payment of {amount} for “{title}” was decided for the "
                                  "payer: the money taken from your balance stays with them.",
        "organizer_payment_reversed": "{provider} reversed a payment of {amount} for “{title}”: the money was "
                                      "taken back from your balance.",
        "organizer_refund_failed": "Your refund of {amount} for “{title}” failed at {provider}: the money did "
                                   "not reach the participant. It is owed back again; please refund it once "
                                   "more.",
        "access_ended": "The ticket has ended: its Join link and access token no longer work, and the seat is "
                        "free again.",
        "fee_back": "The service fee on this money is no longer charged: {fee} given back.",
        "event": "Event", "participant": "Participant", "registration": "Registration", "amount": "Amount",
        "reason": "Reason given", "reference": "Refund reference", "date": "Date", "paid": "Paid",
        "withdrawn": "Withdrawn by the provider", "owed": "Owed back",
        "a_participant": "a participant (personal data erased)",
        "provider.stripe": "Stripe", "provider.paypal": "PayPal", "provider.payu": "PayU",
        "provider.manual": "the payment provider",
        "why": "You receive this because this address is the organizer's contact e-mail in Webinar Ledger.",
    },
    "pl": {
        "greeting": "Dzień dobry {organizer},",
        "organizer_dispute_opened.subject": "Płatność zakwestionowana: „{title}”",
        "organizer_funds_withdrawn.subject": "Środki pobrane w związku ze sporem: „{title}”",
        "organizer_dispute_won.subject": "Spór rozstrzygnięty na Twoją korzyść: „{title}”",
        "organizer_dispute_lost.subject": "Spór przegrany: „{title}”",
        "organizer_payment_reversed.subject": "Płatność cofnięta: „{title}”",
        "organizer_refund_failed.subject": "Zwrot nie powiódł się: „{title}”",
        "organizer_dispute_opened": "Płatność {amount} za „{title}” została zakwestionowana (operator "
                                    "płatności: {provider}). Na razie żadne środki nie zostały pobrane.",
        "organizer_dispute_opened.next": "Odpowiedz na spór w panelu operatora ({provider}) przed wyznaczonym "
                                         "przez niego terminem. Bilet i dostęp uczestnika pozostają na razie "
                                         "ważne.",
        "organizer_funds_withdrawn": "Operator płatności ({provider}) pobrał z Twojego salda {amount} "
                                     "w związku ze sporem o płatność za „{title}”.",
        "organizer_funds_withdrawn.next": "Te środki nie są już liczone jako sprzedaż biletów. Bilet pozostaje "
                                          "ważny do rozstrzygnięcia sporu; po wygranym sporze środki zwykle "
                                          "wracają.",
        "organizer_dispute_won": "Spór o płatność za „{title}” został rozstrzygnięty na Twoją korzyść: środki "
                                 "pozostają u Ciebie.",
        "organizer_dispute_lost": "Spór o płatność {amount} za „{title}” został rozstrzygnięty na korzyść "
                                  "płacącego: środki pobrane z Twojego salda nie wrócą.",
        "organizer_payment_reversed": "Operator płatności ({provider}) cofnął płatność {amount} za „{title}”: "
                                      "środki zostały pobrane z Twojego salda.",
        "organizer_refund_failed": "Zwrot {amount} za „{title}” nie powiódł się (operator płatności: "
                                   "{provider}): środki nie dotarły do uczestnika. Kwota jest znowu do "
                                   "zwrotu; zwróć ją ponownie.",
        "access_ended": "Bilet wygasł: link do dołączenia i token dostępu przestały działać, a miejsce jest "
                        "znowu wolne.",
        "fee_back": "Opłata serwisowa od tych środków nie jest już naliczana: zwrócono {fee}.",
        "event": "Wydarzenie", "participant": "Uczestnik", "registration": "Rejestracja", "amount": "Kwota",
        "reason": "Powód podany przez operatora", "reference": "Numer zwrotu", "date": "Data",
        "paid": "Zapłacono", "withdrawn": "Pobrane przez operatora", "owed": "Do zwrotu",
        "a_participant": "uczestnik (dane osobowe usunięte)",
        "provider.stripe": "Stripe", "provider.paypal": "PayPal", "provider.payu": "PayU",
        "provider.manual": "operator płatności",
        "why": "Otrzymujesz tę wiadomość, ponieważ ten adres jest kontaktowym adresem e-mail organizatora "
               "w Webinar Ledger.",
    },
}


def resolve_language(registration_language: str | None, organizer_country: str) -> str:
    """The participant's choice when it is one we write; none given → Polish for
    a Polish organizer, else English; an unsupported choice → English."""
    if registration_language:
        chosen = registration_language.strip().lower()[:2]
        return chosen if chosen in LANGUAGES else "en"
    return "pl" if organizer_country.strip().upper() == "PL" else "en"


def format_when(starts_at_utc: str, timezone: str, language: str) -> str:
    """``Tuesday, 1 December 2026, 18:00 CET (Europe/Warsaw, UTC+01:00)``."""
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone, timezone = ZoneInfo("UTC"), "UTC"
    local = datetime.fromisoformat(starts_at_utc).astimezone(zone)
    day = f"{_WEEKDAYS[language][local.weekday()]}, {local.day} {_MONTHS[language][local.month - 1]}"
    clock = f"{local:%H:%M} {local.tzname()}"
    if timezone == "UTC":
        return f"{day} {local.year}, {clock}"
    offset = local.strftime("%z")
    return f"{day} {local.year}, {clock} ({timezone}, UTC{offset[:3]}:{offset[3:]})"


def format_money(minor: int, currency: str, language: str) -> str:
    """``49.00 USD`` / ``49,00 PLN`` — exact, from integer minor units."""
    amount = Money(minor, currency).amount
    return f"{amount.replace('.', ',') if language == 'pl' else amount} {currency}"


# --- blocks ----------------------------------------------------------------------------

Block = tuple[Any, ...]


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _text(blocks: list[Block]) -> str:
    out: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("p", "small"):
            out.append(block[1])
        elif kind == "facts":
            out.append("\n".join(f"{label}: {value}" for label, value in block[1]))
        elif kind == "list":
            out.append(block[1] + ":\n" + "\n".join(f"  - {item}" for item in block[2]))
        elif kind in ("button", "token"):
            out.append(f"{block[1]}: {block[2]}")
    return "\n\n".join(out) + "\n"


_BUTTON = ("display:inline-block;padding:12px 24px;background:#1a73e8;color:#ffffff;"
           "text-decoration:none;border-radius:4px;font-weight:bold")


def _html(blocks: list[Block], *, language: str, subject: str) -> str:
    e = html.escape
    parts: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind == "p":
            parts.append(f"<p>{e(block[1])}</p>")
        elif kind == "small":
            parts.append(f'<p style="color:#666666;font-size:13px">{e(block[1])}</p>')
        elif kind == "facts":
            rows = "".join(
                f'<tr><th align="left" style="padding:2px 12px 2px 0">{e(label)}</th>'
                f"<td>{e(value)}</td></tr>" for label, value in block[1]
            )
            parts.append(f"<table>{rows}</table>")
        elif kind == "list":
            items = "".join(f"<li>{e(item)}</li>" for item in block[2])
            parts.append(f"<p><strong>{e(block[1])}</strong></p><ul>{items}</ul>")
        elif kind == "button":
            url = e(block[2], quote=True)
            parts.append(f'<p><a href="{url}" style="{_BUTTON}">{e(block[1])}</a></p>'
                         f'<p style="font-size:13px">{e(block[3])}: <a href="{url}">{e(block[2])}</a></p>')
        elif kind == "token":
            parts.append(f'<p>{e(block[1])}:<br><code style="font-size:15px">{e(block[2])}</code></p>')
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">'
            f"<title>{e(subject)}</title></head>\n"
            f'<body style="font-family:Arial,Helvetica,sans-serif;font-size:15px;color:#222222">\n'
            f"{body}\n</body></html>\n")


# --- the e-mails -----------------------------------------------------------------------

def render(kind: str, ctx: Mapping[str, Any], *, join_url: str | None = None,
           token: str | None = None) -> Rendered:
    """One e-mail.  ``kind`` is confirmation, resend, reschedule, cancellation,
    rejection, owed_back or refund, or one of :data:`ORGANIZER_KINDS` (to the
    organizer); ``join_url`` and ``token`` are needed by the first two only."""
    language = ctx["language"] if ctx["language"] in LANGUAGES else "en"
    if kind in ORGANIZER_KINDS:
        return _render_organizer(kind, ctx, language)
    t = TEXTS[language]
    event = ctx["event"]
    currency = ctx["currency"]

    def money(minor: int) -> str:
        return format_money(minor, currency, language)

    def when(iso: str) -> str:
        return format_when(iso, event["timezone"], language)

    names = {"title": event["title"], "organizer": ctx["organizer"], "name": ctx["name"]}
    if f"{kind}.subject" not in t:
        raise ValueError(f"unknown e-mail kind {kind!r}")
    subject = t[f"{kind}.subject"].format(**names)
    blocks: list[Block] = [("p", t["greeting"].format(**names))]

    if kind in ("confirmation", "resend"):
        if join_url is None or token is None:
            raise ValueError("a confirmation needs its join URL and token")
        opening = t["paid"] if ctx["paid_minor"] >= ctx["price_minor"] else t["confirmed"]
        blocks.append(("p", opening.format(paid=money(ctx["paid_minor"]), **names)))
        if kind == "resend":
            blocks.append(("p", t["resent"]))
        paid = [(t["amount_paid"], money(ctx["paid_minor"]))] if ctx["paid_minor"] > 0 else []
        schedule = _schedule(event, t, when)
        if schedule[-1][0] == "facts":  # one date: show it and the amount in one table
            schedule[-1] = ("facts", [*schedule[-1][1], *paid])
        elif paid:
            schedule.append(("facts", paid))
        blocks.extend(schedule)
        if event["permanent"]:
            blocks.append(("p", t["permanent"]))
        blocks.append(("button", t["join"], join_url, t["join_link"]))
        blocks.append(("token", t["token"], token))
        blocks.append(("p", t["keep"]))
    elif kind == "reschedule":
        blocks.append(("p", t["rescheduled"].format(**names)))
        blocks.append(("facts", [(t["new_date"], when(ctx["starts_at"])),
                                 (t["previous_date"], when(ctx["previous_starts_at"]))]))
        if len(event["sessions"]) > 1:
            blocks.extend(_schedule(event, t, when))
        blocks.append(("p", t["ticket_unchanged"] if ctx["has_ticket"] else t["registration_unchanged"]))
    elif kind in ("cancellation", "rejection"):
        blocks.append(("p", t["cancelled" if kind == "cancellation" else "rejected"].format(**names)))
        if ctx.get("reason"):
            blocks.append(("facts", [(t["reason"], ctx["reason"])]))
        blocks.append(("p", _money_back(ctx, t, money, names["organizer"])))
        if ctx.get("had_ticket"):
            blocks.append(("p", t["access_ends"]))
    elif kind == "owed_back":  # R17: money that bought no ticket, one e-mail per payment
        via = t.get(f"via.{ctx['provider']}", t["via.manual"])
        blocks.append(("p", t[f"owed.{ctx['why']}"].format(
            payment=money(ctx["payment_minor"]), paid=money(ctx["paid_minor"]), price=money(ctx["price_minor"]),
            **names)))
        blocks.append(("facts", [(t["payment"], money(ctx["payment_minor"])),
                                 (t["owed"], money(ctx["refund_due_minor"]))]))
        blocks.append(("p", t["owed_total"].format(owed=money(ctx["refund_due_minor"]), via=via, **names)))
        if ctx.get("keeps_ticket"):
            blocks.append(("p", t["ticket_stays"]))
    elif kind == "refund":  # R19: a partial refund keeps the ticket, the rest is said
        via = t.get(f"via.{ctx['provider']}", t["via.manual"])
        blocks.append(("p", t["refund_recorded"].format(refund=money(ctx["refund_minor"]), via=via, **names)))
        blocks.append(("facts", [(t["amount_paid"], money(ctx["paid_minor"])),
                                 (t["refunded_label"], money(ctx["refunded_minor"]))]))
        if ctx["refund_due_minor"] > 0:
            blocks.append(("p", t["still_owed"].format(owed=money(ctx["refund_due_minor"]), **names)))
        elif ctx["refunded_minor"] >= ctx["paid_minor"]:
            blocks.append(("p", t["all_refunded"].format(paid=money(ctx["paid_minor"]))))
        if ctx.get("keeps_ticket"):
            blocks.append(("p", t["ticket_stays"]))
        elif ctx.get("access_ended"):
            blocks.append(("p", t["access_ends"]))

    blocks.append(("small", t["sign"].format(**names)))
    return Rendered(subject=subject, text=_text(blocks), html=_html(blocks, language=language,
                                                                       subject=subject))


def _render_organizer(kind: str, ctx: Mapping[str, Any], language: str) -> Rendered:
    """An e-mail to the organizer about a dispute, a reversal or a failed
    refund (issue 18 item 2).  The participant is shown only by the name the
    organizer already sees in who-paid, or as "a participant" once erased."""
    t = ORGANIZER_TEXTS[language]
    event = ctx["event"]

    def money(minor: int) -> str:
        return format_money(minor, ctx["currency"], language)

    provider = t.get(f"provider.{ctx['provider']}", t["provider.manual"])
    values = {"title": event["title"], "organizer": ctx["organizer"], "provider": provider,
              "amount": money(ctx["amount_minor"])}

    def sentence(key: str) -> str:
        text = t[key].format(**values)
        return text[:1].upper() + text[1:]

    subject = t[f"{kind}.subject"].format(**values)
    facts: list[tuple[str, str]] = [
        (t["event"], event["title"]),
        (t["participant"], ctx["name"] or t["a_participant"]),
        (t["registration"], ctx["registration_id"]),
    ]
    if ctx["amount_minor"] > 0:
        facts.append((t["amount"], money(ctx["amount_minor"])))
    if kind == "organizer_dispute_opened" and ctx.get("dispute_reason"):
        facts.append((t["reason"], ctx["dispute_reason"]))
    if kind == "organizer_refund_failed" and ctx.get("reference"):
        facts.append((t["reference"], ctx["reference"]))
    facts.append((t["date"], format_when(ctx["occurred_at"], event["timezone"], language)))
    facts.append((t["paid"], money(ctx["paid_minor"])))
    if ctx.get("withdrawn_minor", 0) > 0:
        facts.append((t["withdrawn"], money(ctx["withdrawn_minor"])))
    if ctx["refund_due_minor"] > 0:
        facts.append((t["owed"], money(ctx["refund_due_minor"])))

    blocks: list[Block] = [("p", t["greeting"].format(**values)), ("p", sentence(kind)), ("facts", facts)]
    if f"{kind}.next" in t:
        blocks.append(("p", sentence(f"{kind}.next")))
    if ctx.get("fee_reversed_minor", 0) > 0:
        blocks.append(("p", t["fee_back"].format(fee=money(ctx["fee_reversed_minor"]))))
    if ctx.get("access_ended"):
        blocks.append(("p", t["access_ended"]))
    blocks.append(("small", t["why"]))
    blocks.append(("small", ORGANIZER_SENDER))
    return Rendered(subject=subject, text=_text(blocks), html=_html(blocks, language=language, subject=subject))


def _schedule(event: Mapping[str, Any], t: Mapping[str, str], when: Any) -> list[Block]:
    sessions = sorted(event["sessions"], key=lambda s: s["starts_at"])
    if len(sessions) == 1:
        return [("facts", [(t["when"], when(sessions[0]["starts_at"]))])]
    return [("list", t["sessions"], [when(s["starts_at"]) for s in sessions])]


def _money_back(ctx: Mapping[str, Any], t: Mapping[str, str], money: Any, organizer: str) -> str:
    """R15: refunds are not automatic; say exactly what is owed and who pays it back."""
    if ctx["refund_due_minor"] > 0:
        via = t.get(f"via.{ctx['provider']}", t["via.manual"])
        return t["refund_due"].format(paid=money(ctx["paid_minor"]), refund_due=money(ctx["refund_due_minor"]),
                                      organizer=organizer, via=via)
    if ctx["paid_minor"] > 0:
        return t["refunded"].format(paid=money(ctx["paid_minor"]))
    return t["nothing_paid"]
