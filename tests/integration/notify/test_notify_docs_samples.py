"""docs/emails/ shows every e-mail as the worker composes it; this test keeps
the samples honest.  Regenerate after changing a template:

    UPDATE_EMAIL_SAMPLES=1 .venv/bin/python -m pytest tests/integration/notify/test_notify_docs_samples.py
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ledger.config import Settings
from workers.notify_sender import OutboxRow, Sender

DOCS = Path(__file__).resolve().parents[3] / "docs" / "emails"
REGISTRATION = "0b5c3d8e-1f2a-4b6c-9d7e-5a4b3c2d1e0f"
TRIGGER = "7d2f9a10-3c4b-5d6e-8f70-1a2b3c4d5e6f"

US_EVENT: dict[str, Any] = {"id": "5f0e1d2c-3b4a-4958-8776-655443322110", "title": "Pricing Strategy 101",
            "timezone": "America/New_York", "permanent": False,
            "sessions": [{"id": "s1", "starts_at": "2026-12-01T23:00:00+00:00"}]}
PL_EVENT: dict[str, Any] = {"id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d", "title": "Podatki w firmie 2027",
            "timezone": "Europe/Warsaw", "permanent": True,
            "sessions": [{"id": "s1", "starts_at": "2026-11-24T17:00:00+00:00"},
                         {"id": "s2", "starts_at": "2026-12-01T17:00:00+00:00"}]}


def ctx(language: str, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "language": language, "registration_id": REGISTRATION,
        "name": "Ann Example" if language == "en" else "Anna Nowak",
        "organizer": "Acme Webinars" if language == "en" else "Szkolenia Kowalski",
        "event": US_EVENT if language == "en" else PL_EVENT,
        "currency": "USD" if language == "en" else "PLN", "provider": "stripe" if language == "en" else "payu",
        "price_minor": 4900 if language == "en" else 30050,
    }
    base.update({"paid_minor": base["price_minor"], "refunded_minor": 0, "refund_due_minor": 0})
    base.update(extra)
    return base


SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "confirmation-en": ("confirmation", ctx("en")),
    "confirmation-pl": ("confirmation", ctx("pl")),
    "resend-en": ("resend", ctx("en")),
    "reschedule-en": ("reschedule", ctx("en", session_id="s1", starts_at="2026-12-03T00:30:00+00:00",
                                       previous_starts_at="2026-12-01T23:00:00+00:00", has_ticket=True)),
    "reschedule-pl": ("reschedule", ctx("pl", session_id="s2", starts_at="2026-12-02T16:00:00+00:00",
                                       previous_starts_at="2026-12-01T17:00:00+00:00", has_ticket=True,
                                       event={**PL_EVENT, "sessions": [  # as after the move
                                           PL_EVENT["sessions"][0],
                                           {"id": "s2", "starts_at": "2026-12-02T16:00:00+00:00"}]})),
    "cancellation-en": ("cancellation", ctx("en", reason="The speaker is ill.", refund_due_minor=4900,
                                           had_ticket=True)),
    "cancellation-pl": ("cancellation", ctx("pl", reason="Choroba prowadzącego.", paid_minor=0,
                                           had_ticket=False)),
    "rejection-en": ("rejection", ctx("en", reason="Registrations are limited to members.",
                                     paid_minor=0, had_ticket=False)),
    "rejection-pl": ("rejection", ctx("pl", reason="Zduplikowane konto.", refund_due_minor=30050,
                                     had_ticket=True)),
    # R17: paid twice (the ticket stays), and money that found no seat.
    "owed_back-en": ("owed_back", ctx("en", why="paid_twice", payment_minor=4900, paid_minor=9800,
                                     refund_due_minor=4900, owed_minor=4900, keeps_ticket=True)),
    "owed_back-pl": ("owed_back", ctx("pl", why="no_seat", payment_minor=30050, refund_due_minor=30050,
                                     owed_minor=30050, keeps_ticket=False)),
    # R19: a goodwill refund keeps the ticket; refunding the rest after a cancellation.
    "refund-en": ("refund", ctx("en", refund_minor=1000, refunded_minor=1000, keeps_ticket=True,
                               access_ended=False)),
    "refund-pl": ("refund", ctx("pl", refund_minor=30050, refunded_minor=30050, keeps_ticket=False,
                               access_ended=False)),
}


def org_ctx(language: str, **extra: Any) -> dict[str, Any]:
    """An e-mail to the organizer (issue 18 item 2): the planner's context
    with the fact's figures; ``provider`` is the one the money came through."""
    base = ctx(language, audience="organizer", occurred_at="2026-11-02T09:15:00+00:00", dispute_reason=None,
               reference="", fee_reversed_minor=0, access_ended=False, withdrawn_minor=0)
    base["amount_minor"] = base["price_minor"]
    base.update(extra)
    return base


_ORGANIZER_SAMPLES: dict[str, dict[str, Any]] = {
    "organizer_dispute_opened": {"dispute_reason": "fraudulent"},
    "organizer_funds_withdrawn": {"withdrawn_minor": None, "fee_reversed_minor": None},
    "organizer_dispute_won": {},
    "organizer_dispute_lost": {"withdrawn_minor": None, "access_ended": True},
    "organizer_payment_reversed": {"withdrawn_minor": None, "fee_reversed_minor": None, "access_ended": True},
    "organizer_refund_failed": {"reference": None, "refunded_minor": 0, "refund_due_minor": None},
}
for _kind, _extra in _ORGANIZER_SAMPLES.items():
    for _language in ("en", "pl"):
        _price = 4900 if _language == "en" else 30050
        _values = {k: (v if v is not None else {"fee_reversed_minor": _price * 5 // 100,
                                                 "reference": "re_3QxY7d" if _language == "en" else "ZWROT-7781"
                                                 }.get(k, _price)) for k, v in _extra.items()}
        if _kind == "organizer_payment_reversed" and _language == "en":
            _values["provider"] = "paypal"
        if _kind == "organizer_dispute_won" and _language == "pl":
            _values["name"] = None  # erased (R24): "a participant"
        SAMPLES[f"{_kind}-{_language}"] = (_kind, org_ctx(_language, **_values))

ORGANIZER = "3c2b1a09-8f7e-4d6c-9b5a-4a3f2e1d0c9b"


def compose(name: str) -> EmailMessage:
    settings = Settings.from_env({"LEDGER_DATA_DIR": "/nonexistent", "LEDGER_SECRET_KEY": "11" * 32,
                                  "LEDGER_PUBLIC_URL": "https://webinars.example.com"})
    sender = Sender(SimpleNamespace(settings=settings),  # type: ignore[arg-type]
                    record_failure=lambda failure: None)
    kind, context = SAMPLES[name]
    to_organizer = kind.startswith("organizer_")
    row = OutboxRow(seq=1, message_id=f"<{kind}.{TRIGGER}.{REGISTRATION}@webinars.example.com>", kind=kind,
                    registration_id=REGISTRATION,
                    recipient="billing@acme.example" if to_organizer else "ann@example.com", context=context,
                    composed_at=datetime(2026, 11, 2, 9, 15, tzinfo=UTC), attempts=0, first_failed_at=None,
                    now=datetime(2026, 11, 2, 9, 15, tzinfo=UTC), organizer_id=ORGANIZER if to_organizer else None)
    return sender.compose(row)


def rendered_files() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name in SAMPLES:
        message = compose(name)
        files[f"{name}.eml"] = message.as_bytes(policy=SMTP)
        for subtype in ("plain", "html"):
            part = message.get_body((subtype,))
            assert part is not None
            suffix = "txt" if subtype == "plain" else "html"
            headers = f"Subject: {message['Subject']}\n\n" if subtype == "plain" else ""
            files[f"{name}.{suffix}"] = (headers + part.get_content()).encode()
    return files


def test_docs_show_every_email_as_composed() -> None:
    files = rendered_files()
    if os.environ.get("UPDATE_EMAIL_SAMPLES") == "1":
        DOCS.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (DOCS / name).write_bytes(content)
    stale = [name for name, content in files.items()
             if not (DOCS / name).exists() or (DOCS / name).read_bytes() != content]
    assert not stale, f"docs/emails is out of date ({stale}); see this module's docstring"
    assert {p.name for p in DOCS.iterdir()} >= set(files)
