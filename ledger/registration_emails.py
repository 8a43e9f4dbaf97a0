"""One registration per e-mail address and event (issue 13 item 10).

A second registration with the same address for the same event is not a new
registration: the service answers with the first one (and the API with its
checkout when it is unpaid), so a participant who registers twice can never
be charged twice.  The address is compared normalized: surrounding white
space removed, case ignored.

Race-free: the claim ``(event_id, email_digest) -> registration_id`` is a row
of ``registration_emails`` inserted in the *same transaction* as the
registration's events (the recorder writes it beside them, as it does
idempotency marks).  Two concurrent registrations with one address cannot both
commit -- the second violates the primary key, the store reports a conflict,
the command is run again and finds the first.

Personal data: the table holds an HMAC-SHA-256 of the normalized address under
a key derived from ``LEDGER_SECRET_KEY``, never the address; without the key
it cannot be recomputed from a guessed address.  Erasing a participant (R24)
deletes their rows (:meth:`RegistrationEmails.forget`), after which the address
may register again.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from ledger.database import Database

#: Domain separation: the digest key is used for nothing else.
_KEY_LABEL = b"ledger/registration-email-digest/v1"


def normalized_email(email: str) -> str:
    """What "the same e-mail" means: trimmed, case-insensitive."""
    return email.strip().casefold()


@dataclass(frozen=True)
class EmailClaim:
    """The row that claims an address for a registration, written by the
    recorder inside the registration's events' transaction."""

    event_id: str
    email_digest: bytes
    registration_id: str
    #: The ended registration whose claim this one takes over, if any.
    replaces: str | None = None

    def write(self, cursor: Any) -> None:
        """Insert the claim, after dropping the claim of the ended registration
        it replaces.  A concurrent claim of the address makes the insert
        violate the primary key (also when the concurrent one replaced the same
        ended registration first: then nothing is dropped here and the row is
        theirs), which the store turns into a retried conflict.  No row counts
        are read: the recorder may run this in pipeline mode.  Never a
        prepared statement: psycopg loses statements prepared in a pipeline
        whose transaction fails (as this insert makes it fail on purpose), yet
        keeps them in its cache ("prepared statement _pg3_n does not exist")."""
        if self.replaces is not None:
            cursor.execute(
                "DELETE FROM registration_emails WHERE event_id = %s AND email_digest = %s AND registration_id = %s",
                (self.event_id, self.email_digest, self.replaces), prepare=False,
            )
        cursor.execute(
            "INSERT INTO registration_emails (event_id, email_digest, registration_id) VALUES (%s, %s, %s)",
            (self.event_id, self.email_digest, self.registration_id), prepare=False,
        )

    def add_to(self, rows: Any) -> None:
        """What the recorder calls to hand the claim to the database's save
        function (``ledger.application.SaveRows``): the same DELETE of the
        replaced claim and INSERT, made there."""
        rows.claim(self.event_id, self.email_digest, self.registration_id, self.replaces)


class RegistrationEmails:
    """Digests and look-ups of the addresses registered per event."""

    def __init__(self, db: Database, secret_key: bytes) -> None:
        self._db = db
        self._key = hmac.new(secret_key, _KEY_LABEL, hashlib.sha256).digest()
        # Keyed once: a copy of it per address costs two thirds of a new HMAC
        # (whose set-up looks the hash up in OpenSSL's provider tables each
        # time, and takes its locks: every registration digests an address).
        self._keyed = hmac.new(self._key, digestmod=hashlib.sha256)

    def __repr__(self) -> str:  # never show key material
        return "RegistrationEmails(<key hidden>)"

    def digest(self, email: str) -> bytes:
        """HMAC-SHA256 of the normalized address under the key (what every
        stored claim holds), from a copy of the keyed HMAC."""
        keyed = self._keyed.copy()
        keyed.update(normalized_email(email).encode())
        return keyed.digest()

    def claim(self, event_id: str, email: str, registration_id: str, replaces: str | None = None) -> EmailClaim:
        return EmailClaim(event_id, self.digest(email), registration_id, replaces)

    def registration_for(self, event_id: str, email: str) -> str | None:
        """The registration that already uses ``email`` on ``event_id``, if any."""
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT registration_id FROM registration_emails WHERE event_id = %s AND email_digest = %s",
                (event_id, self.digest(email)),
            ).fetchone()
        return None if row is None else str(row[0])

    def claimed(self, event_id: str, emails: list[str]) -> set[str]:
        """Which of ``emails`` (as given) are claimed on ``event_id``, in one query."""
        if not emails:
            return set()
        digests = {self.digest(email): email for email in emails}
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT email_digest FROM registration_emails WHERE event_id = %s AND email_digest = ANY(%s)",
                (event_id, list(digests)),
            ).fetchall()
        return {digests[bytes(digest)] for (digest,) in rows}

    def registrations_with(self, email: str) -> list[str]:
        """Every registration whose claim of ``email`` stands, on any event:
        written in the registration's own transaction, so a registration made
        a moment ago is here before any view has seen it (an erasure by
        address relies on that, R24).  A claim an ended registration gave up
        to a newer one is not: the views know those."""
        with self._db.transaction() as conn:
            rows = conn.execute(
                "SELECT registration_id::text FROM registration_emails WHERE email_digest = %s",
                (self.digest(email),),
            ).fetchall()
        return [rid for (rid,) in rows]

    def forget(self, registration_ids: list[str]) -> int:
        """R24: drop the claims of erased registrations (the erasure's hook)."""
        with self._db.transaction() as conn:
            cur = conn.execute(
                "DELETE FROM registration_emails WHERE registration_id = ANY(%s::uuid[])", (registration_ids,)
            )
            return cur.rowcount
