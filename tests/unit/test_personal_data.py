"""Sealing and opening participants' personal data (R24), without I/O: the
key table is an in-memory stand-in for ``personal_data_keys`` (its rows are
what the recorder would insert)."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from ledger.domain.registration import Registration
from ledger.personal_data import (
    ERASED,
    PERSONAL_FIELDS,
    SEALED,
    Keyring,
    PersonalDataUnreadable,
    close_state,
    open_state,
    seal_state,
)
from ledger.secret_box import SecretBox

RID = "0b6f6c1e-8a57-4a53-9d0e-2b6c8a6d1c11"
OTHER = "7c1a2b3c-8a57-4a53-9d0e-2b6c8a6d1c11"


class KeyTable:
    """``personal_data_keys`` as rows in a dict; counts the queries."""

    def __init__(self) -> None:
        self.rows: dict[str, bytes | None] = {}
        self.queries = 0
        self.box = SecretBox(os.urandom(32))  # LEDGER_SECRET_KEY: wraps the keys

    def execute(self, sql: str, params: tuple[Any, ...]) -> KeyTable:
        self.queries += 1
        self._found = [(rid, self.rows[rid]) for rid in params[0] if rid in self.rows]
        return self

    def fetchall(self) -> list[tuple[str, bytes | None]]:
        return self._found

    @contextmanager
    def transaction(self) -> Iterator[KeyTable]:
        yield self


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def table() -> KeyTable:
    return KeyTable()


def keyring(table: KeyTable, clock: Clock | None = None, **kwargs: Any) -> Keyring:
    return Keyring(table.box, table.transaction, monotonic=clock or Clock(), **kwargs)


def registered_state() -> dict[str, Any]:
    return {"event_id": "e", "organizer_id": "o", "name": "Ann Example", "email": "ann@example.org",
            "fields": {"company": "Acme"}, "language": None, "price_minor": 4900, "currency": "EUR",
            "provider": "manual"}


def commit(ring: Keyring, table: KeyTable, rid: str = RID) -> None:
    """What the recorder does in the events' transaction, then after commit."""
    for found, wrapped in ring.pending_rows([rid]):
        table.rows[found] = wrapped
    ring.committed([rid])


def test_sealed_fields_are_ciphertext_and_open_again(table: KeyTable) -> None:
    ring = keyring(table)
    state = registered_state()
    seal_state(state, Registration.Registered, RID, 1, ring)
    assert set(state) == {"event_id", "organizer_id", "language", "price_minor", "currency", "provider", SEALED}
    assert "Ann" not in str(state) and "ann@example.org" not in str(state)
    commit(ring, table)
    # Another process: no cache, the key comes from the table.
    reader = keyring(table)
    opened = dict(state)
    open_state(opened, Registration.Registered, RID, 1, reader)
    assert opened == {**registered_state(), ERASED: False}


def test_a_ciphertext_moved_to_another_event_does_not_open(table: KeyTable) -> None:
    ring = keyring(table)
    state = registered_state()
    seal_state(state, Registration.Registered, RID, 1, ring)
    commit(ring, table)
    with pytest.raises(PersonalDataUnreadable):
        open_state(dict(state), Registration.Registered, RID, 2, keyring(table))


def test_erased_key_reads_as_erased_and_new_facts_store_nothing_personal(table: KeyTable) -> None:
    ring = keyring(table)
    state = registered_state()
    seal_state(state, Registration.Registered, RID, 1, ring)
    commit(ring, table)
    table.rows[RID] = None  # erased
    ring.forget([RID])
    opened = dict(state)
    open_state(opened, Registration.Registered, RID, 1, ring)
    assert (opened["name"], opened["email"], opened["fields"], opened[ERASED]) == (None, None, None, True)
    assert opened["price_minor"] == 4900
    failure = {"message_id": "<m>", "kind": "confirmation", "smtp_code": 550, "reason": "550 ann@example.org"}
    seal_state(failure, Registration.EmailDeliveryFailed, RID, 5, ring)
    assert "reason" not in failure and SEALED not in failure
    open_state(failure, Registration.EmailDeliveryFailed, RID, 5, ring)
    assert failure["reason"] is None and failure[ERASED] is True


def test_clear_text_events_read_as_they_are_until_erased(table: KeyTable) -> None:
    ring = keyring(table)
    legacy = registered_state()
    opened = dict(legacy)
    open_state(opened, Registration.Registered, RID, 1, ring)
    assert opened == {**legacy, ERASED: False}
    table.rows[RID] = None  # the erasure's tombstone
    ring.forget([RID])
    opened = dict(legacy)
    open_state(opened, Registration.Registered, RID, 1, ring)
    assert opened["name"] is None and opened["email"] is None and opened[ERASED] is True


def test_the_cache_saves_round_trips_but_not_for_long(table: KeyTable) -> None:
    clock = Clock()
    ring = keyring(table, clock, cache_seconds=30.0, max_keys=2)
    state = registered_state()
    seal_state(state, Registration.Registered, RID, 1, ring)  # a new key: no query
    commit(ring, table)
    assert table.queries == 0
    for _ in range(3):
        open_state(dict(state), Registration.Registered, RID, 1, ring)
    assert table.queries == 0  # the key this process created
    clock.now = 31.0
    table.rows[RID] = None  # erased by another process
    opened = dict(state)
    open_state(opened, Registration.Registered, RID, 1, ring)
    assert table.queries == 1 and opened[ERASED] is True
    ring.refresh([OTHER, "1b6f6c1e-8a57-4a53-9d0e-2b6c8a6d1c11", "2b6f6c1e-8a57-4a53-9d0e-2b6c8a6d1c11"])
    assert table.queries == 2  # one query for a batch; the cache keeps only max_keys entries
    assert len(ring._cache) == 2


@pytest.mark.parametrize("stored", ["sealed", "clear"])
@pytest.mark.parametrize("key", ["held", "erased", "no row"])
def test_close_state_is_open_state_without_the_personal_fields(table: KeyTable, stored: str, key: str) -> None:
    """The relay without personal data decrypts nothing (``close_state``), and
    shows exactly what opening then dropping the fields would show."""
    ring = keyring(table)
    state = registered_state()
    if stored == "sealed":
        seal_state(state, Registration.Registered, RID, 1, ring)
        commit(ring, table)
    if key == "erased":
        table.rows[RID] = None
    elif key == "no row":
        table.rows.pop(RID, None)
    reader = keyring(table)
    opened, closed = dict(state), dict(state)
    open_state(opened, Registration.Registered, RID, 1, reader)
    close_state(closed, Registration.Registered, reader.holds_keys([RID, OTHER]).get(RID))
    names = PERSONAL_FIELDS[Registration.Registered]
    assert list(closed.items()) == [(k, v) for k, v in opened.items() if k not in names]
    assert closed[ERASED] is (key != "held" if stored == "sealed" else key == "erased")


def test_a_wrapped_key_holds_what_secret_box_seal_writes() -> None:
    """``Keyring._wrap`` writes the key's JSON itself: the plaintext must be
    ``SecretBox.seal``'s (``json.dumps(sort_keys=True)``), under the label
    as associated data, with a fresh nonce each time."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    secret = os.urandom(32)
    table = KeyTable()
    table.box = SecretBox(secret)
    ring = keyring(table)
    key = ring.key_for_sealing(RID, new=True)
    assert key is not None
    (rid, wrapped), = ring.pending_rows([RID])
    (_, again), = ring.pending_rows([RID])
    plain = AESGCM(secret).decrypt(wrapped[:12], wrapped[12:], f"personal-data-key:{RID}".encode())
    assert plain == json.dumps({"k": base64.b64encode(key).decode()}, sort_keys=True).encode()
    assert table.box.open(f"personal-data-key:{RID}", wrapped) == json.loads(plain)
    assert rid == RID and wrapped[:12] != again[:12]  # a new nonce per wrapping


def test_the_email_digest_is_the_hmac_of_the_normalized_address() -> None:
    """``RegistrationEmails.digest`` copies a keyed HMAC: the same digest as
    keying a new one, from any thread."""
    import hashlib
    import hmac
    from concurrent.futures import ThreadPoolExecutor

    from ledger.registration_emails import _KEY_LABEL, RegistrationEmails, normalized_email

    secret = os.urandom(32)
    emails = RegistrationEmails(db=None, secret_key=secret)  # type: ignore[arg-type]  # (no query made)
    key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()
    addresses = [f" Ann+{i}@Example.ORG " for i in range(200)] + ["zoë@exämple.org", ""]
    with ThreadPoolExecutor(8) as pool:
        digests = list(pool.map(emails.digest, addresses))
    assert digests == [hmac.new(key, normalized_email(a).encode(), hashlib.sha256).digest() for a in addresses]
