"""Use case: erase participants' personal data on request (R24).

What one erasure does, per registration, in this order (crash-safe: each step
is idempotent and a retry finishes what a crash left):

1. **destroy the data key** (``personal_data_keys``: the wrapped key becomes
   NULL, ``erased_at`` is set; a registration stored before sealing existed
   gets such a row as a tombstone).  From this commit on, every reader decodes
   the registration's sealed fields -- and its older clear-text ones -- as
   erased;
2. **purge the rows outside the event log** that hold its personal data
   (:func:`purge_personal_rows`: composed e-mails, stored idempotent answers,
   provider webhook bodies, snapshots);
3. **record** ``PersonalDataErased`` on the registration (no personal data in
   it): the views null their copies, the notify worker drops what is queued,
   and Kafka consumers are told to erase theirs (docs/events.md).

Money, statuses and fees are untouched, and so is every stored event: the
proof (R23) hashes the ciphertext, so ``ledger verify`` still passes.
See docs/audit.md ("Erasure", "Personal data inventory").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg

from ledger import event_log
from ledger.application import LedgerStore
from ledger.clock import Clock
from ledger.domain.registration import Registration
from ledger.errors import ValidationFailed
from ledger.scope import Scope, parse_uuid
from ledger.service import LedgerService

#: Registrations one request may erase at most (an e-mail address used for many).
MAX_REGISTRATIONS = 1000

Conn = psycopg.Connection[Any]


@dataclass(frozen=True)
class ErasedRegistration:
    registration_id: str
    #: The ``PersonalDataErased`` event: its public id and log position.
    event_id: str
    position: int | None
    #: Erased by an earlier request (nothing new was recorded).
    already_erased: bool


@dataclass(frozen=True)
class ErasureReceipt:
    id: str
    erased_at: datetime
    registrations: tuple[ErasedRegistration, ...]
    erased_fields: tuple[str, ...]
    #: Rows purged outside the event log, per place (personal data inventory).
    purged: dict[str, int]


def purge_personal_rows(conn: Conn, registration_ids: Sequence[str]) -> dict[str, int]:
    """Remove or blank the personal data kept *outside* the event log for these
    registrations, in the caller's transaction; returns rows touched per place.

    The one place for it: a new table that holds participants' personal data
    gets its statement here (and a line in docs/audit.md's inventory)."""
    ids = [str(r) for r in registration_ids]
    purged = purge_outbox(conn, ids)
    # Provider webhook bodies (payer name, e-mail, address) of this registration's facts.
    purged["provider_inbox"] = conn.execute(
        "UPDATE provider_inbox SET body = ''::bytea, headers = '{}'::jsonb, detail = NULL"
        " WHERE octet_length(body) > 0 AND (id IN (SELECT inbox_id FROM provider_facts"
        "  WHERE registration_id = ANY(%s) AND inbox_id IS NOT NULL)"
        "  OR EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE position(convert_to(r, 'UTF8') IN body) > 0))",
        (ids, ids),
    ).rowcount
    # Answers kept for Idempotency-Key replays: the registration's personal
    # fields inside them read as erased, the rest of the answer stays.
    purged["idempotency_keys"] = _scrub_stored_answers(conn, ids)
    # Snapshots are a cache of aggregates (registrations are no longer
    # snapshotted; older snapshots held the fields in clear).
    purged["ledger_snapshots"] = conn.execute(
        "DELETE FROM ledger_snapshots WHERE originator_id = ANY(%s::uuid[])", (ids,)
    ).rowcount
    # The keyed digest of the e-mail address claimed for one registration per
    # address and event (ledger/registration_emails.py): pseudonymous, still
    # personal; once erased the address may register again.
    purged["registration_emails"] = conn.execute(
        "DELETE FROM registration_emails WHERE registration_id = ANY(%s::uuid[])", (ids,)
    ).rowcount
    return purged


def purge_outbox(conn: Conn, registration_ids: Sequence[str]) -> dict[str, int]:
    """The notify outbox part of :func:`purge_personal_rows`, also run by the
    notify planner when it reaches ``PersonalDataErased`` (an e-mail planned
    from an older read while the erasure ran is dropped then)."""
    ids = [str(r) for r in registration_ids]
    # Queued e-mails are dropped; sent or failed ones keep their row (the
    # record of what was sent) without recipient, context or server text.
    # E-mails to the organizer about the registration (``organizer_id`` set:
    # a dispute, a reversal …) are still sent, to the organizer's address,
    # without the participant's name ("a participant").
    purged = {
        "notify_outbox.pending": conn.execute(
            "DELETE FROM notify_outbox WHERE registration_id = ANY(%s) AND organizer_id IS NULL"
            " AND state = 'pending'", (ids,)
        ).rowcount,
        "notify_outbox": conn.execute(
            "UPDATE notify_outbox SET recipient = '', context = '{}'::jsonb, last_error = NULL"
            " WHERE registration_id = ANY(%s) AND organizer_id IS NULL AND (recipient <> ''"
            " OR context <> '{}'::jsonb OR last_error IS NOT NULL)", (ids,),
        ).rowcount,
    }
    organizers = conn.execute(
        "UPDATE notify_outbox SET context = jsonb_set(context, '{name}', 'null'::jsonb)"
        " WHERE registration_id = ANY(%s) AND organizer_id IS NOT NULL"
        " AND jsonb_typeof(context -> 'name') = 'string'", (ids,),
    ).rowcount
    if organizers:
        purged["notify_outbox.organizer"] = organizers
    return purged


_PERSONAL_KEYS = ("name", "email", "fields")


def _scrub(value: Any, ids: set[str]) -> bool:
    """Null the personal keys of every object in ``value`` that is one of the
    registrations (``id`` or ``registration_id``); True if anything changed."""
    changed = False
    if isinstance(value, dict):
        if str(value.get("id", "")) in ids or str(value.get("registration_id", "")) in ids:
            for key in _PERSONAL_KEYS:
                if value.get(key) is not None:
                    value[key] = None
                    changed = True
            if "erased" in value or changed:
                changed = changed or value.get("erased") is not True
                value["erased"] = True
        for item in value.values():
            changed = _scrub(item, ids) or changed
    elif isinstance(value, list):
        for item in value:
            changed = _scrub(item, ids) or changed
    return changed


def _scrub_stored_answers(conn: Conn, ids: list[str]) -> int:
    rows = conn.execute(
        "SELECT credential, key, body FROM idempotency_keys WHERE body IS NOT NULL"
        " AND EXISTS (SELECT 1 FROM unnest(%s::text[]) r WHERE position(convert_to(r, 'UTF8') IN body) > 0)"
        " FOR UPDATE", (ids,),
    ).fetchall()
    touched = 0
    for credential, key, body in rows:
        try:
            answer = json.loads(bytes(body))
        except ValueError:
            answer = None
        if answer is not None and not _scrub(answer, set(ids)):
            continue
        new_body = json.dumps(answer, separators=(",", ":")).encode() if answer is not None else b""
        conn.execute("UPDATE idempotency_keys SET body = %s WHERE credential = %s AND key = %s",
                     (new_body, credential, key))
        touched += 1
    return touched


def destroy_keys(conn: Conn, registration_ids: Sequence[str], erasure_id: str) -> None:
    """Step 1: the keys are gone once this commits (a tombstone for a
    registration without a key row: stored before sealing existed)."""
    for rid in registration_ids:
        conn.execute(
            "INSERT INTO personal_data_keys (registration_id, wrapped_key, erased_at, erasure_id)"
            " VALUES (%s, NULL, now(), %s) ON CONFLICT (registration_id) DO UPDATE"
            " SET wrapped_key = NULL, erased_at = coalesce(personal_data_keys.erased_at, now()),"
            " erasure_id = coalesce(personal_data_keys.erasure_id, EXCLUDED.erasure_id)",
            (rid, erasure_id),
        )


Transaction = Callable[[], AbstractContextManager[Conn]]


class Erasures:
    """``erase`` is what ``POST /v1/erasures`` calls (organizer for its own
    participants, admin for anyone: ``scope``)."""

    def __init__(self, *, service: LedgerService, store: LedgerStore, transaction: Transaction,
                 clock: Clock) -> None:
        self.service = service
        self.store = store
        self.transaction = transaction
        self.clock = clock

    def erase(self, registration_ids: Sequence[str], *, scope: Scope, erasure_id: UUID) -> ErasureReceipt:
        """Erase these registrations' personal data.  Another organizer's
        registration is not found (404) exactly like an unknown id, and nothing
        is erased unless every id is found."""
        if not registration_ids:
            raise ValidationFailed({"registration_id": ["no registration to erase"]})
        if len(registration_ids) > MAX_REGISTRATIONS:
            raise ValidationFailed({"email": [f"at most {MAX_REGISTRATIONS} registrations at once"]})
        wanted = list(dict.fromkeys(str(parse_uuid(r, "registration")) for r in registration_ids))
        before = {rid: self.service.registration(rid, scope) for rid in wanted}  # 404 before any change
        with self.transaction() as conn:
            destroy_keys(conn, wanted, str(erasure_id))
            purged = purge_personal_rows(conn, wanted)
        keyring = self.store.keyring
        if keyring is not None:
            keyring.forget(wanted)
        erased: list[ErasedRegistration] = []
        for rid in wanted:
            already = before[rid].erasure_id is not None
            registration: Registration = self.service.erase_personal_data(
                rid, erasure_id=str(erasure_id), scope=scope
            )
            version = registration.version if not already else _erasure_version(self.store, registration)
            erased.append(ErasedRegistration(
                registration_id=rid, event_id=event_log.event_id(rid, version),
                position=event_log.position_of(self.store, rid, version), already_erased=already,
            ))
        return ErasureReceipt(
            id=str(erasure_id), erased_at=self.clock(), registrations=tuple(erased),
            erased_fields=Registration.ERASED_FIELDS, purged=purged,
        )


def _erasure_version(store: LedgerStore, registration: Registration) -> int:
    """The version of the registration's ``PersonalDataErased`` event (the
    first one: an erasure is recorded once)."""
    for item in event_log.read_aggregate(store, str(registration.id), after=0, limit=10_000):
        if isinstance(item.domain_event, Registration.PersonalDataErased):
            return item.aggregate_version
    return registration.version
