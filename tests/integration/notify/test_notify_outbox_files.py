"""``LEDGER_SMTP_URL`` unset: e-mails become ``.eml`` files in the outbox folder,
one per fact, quickly, and a re-send after a crash replaces the same file."""

from __future__ import annotations

import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import cast

from ledger.container import Ledger
from tests.support.notify_world import World, running
from tests.support.waiting import wait_until


def eml_files(folder: Path) -> list[Path]:
    """Finished files only: pathlib's glob also matches the hidden ``.tmp-*.eml``
    a message is written to before its rename (seen under load: a
    half-written file counted as one of the three)."""
    return sorted(p for p in folder.glob("*.eml") if not p.name.startswith(".")) if folder.exists() else []


def parse(path: Path) -> EmailMessage:
    return cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=policy.default))


def test_emails_are_written_to_the_outbox_folder(fresh_ledger: Ledger) -> None:
    assert fresh_ledger.settings.smtp_url is None
    world = World(fresh_ledger)
    outbox = fresh_ledger.settings.outbox_dir
    org = world.organizer()
    ev = world.event(org)
    a = world.register(ev, "a@example.com")
    b = world.register(ev, "b@example.com")
    with running(fresh_ledger):
        time.sleep(0.3)  # the worker is following the log
        paid_at = time.monotonic()
        world.pay(a)
        wait_until(lambda: eml_files(outbox), timeout=5, what="the first .eml file")
        assert time.monotonic() - paid_at < 1.0  # the "within a second"
        world.pay(b)
        world.resend(a)
        wait_until(lambda: len(eml_files(outbox)) == 3, what="three .eml files")

        files = eml_files(outbox)
        messages = [parse(p) for p in files]
        assert sorted(str(m["X-Ledger-Kind"]) for m in messages) == ["confirmation", "confirmation", "resend"]
        assert len({str(m["Message-ID"]) for m in messages}) == 3
        resent = next(m for m in messages if m["X-Ledger-Kind"] == "resend")
        assert str(resent["To"]) == "Ann Example <a@example.com>"
        body = resent.get_body(("plain",))
        assert body is not None and world.token(a) in body.get_content()

        # A crash after writing the file but before recording it: the row is pending again.
        with fresh_ledger.db.transaction() as conn:
            conn.execute("UPDATE notify_outbox SET state = 'pending' WHERE kind = 'resend'")
        wait_until(lambda: all(r["state"] == "sent" for r in world.outbox()), what="the re-send")
    assert eml_files(outbox) == files  # the same file was replaced: still one per fact
    assert not list(outbox.glob(".tmp-*"))
