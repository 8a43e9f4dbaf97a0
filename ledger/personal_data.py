"""Participants' personal data sealed per registration, so it can be erased (R24).

Why: the event store is append-only and every stored event is hashed (R23), so
personal data written into an event can never be removed from it.  Instead it
is written *encrypted* under a data key of its own registration; erasing the
participant destroys that key (ledger/erasure.py).  The proof hashes the stored
bytes -- the ciphertext ("encrypt, then hash") -- so the chain, the Merkle tree
and every signed checkpoint still verify after the key is gone.

**Which fields** (:data:`PERSONAL_FIELDS`): a registration's ``name``,
``email`` and form ``fields``, and the mail server's reply text of an
``EmailDeliveryFailed`` (it usually quotes the address).  Everything else in
the events (amounts, statuses, references, fees) is no personal data and stays
in clear.

**Stored form.**  The personal fields are taken out of the event's state and
replaced by one key, ``"sealed"``: base64 of ``nonce (12 bytes) || AES-256-GCM
ciphertext`` of the JSON object of those fields, with the associated data
``"<registration id>/<aggregate version>"`` (a ciphertext copied onto another
event does not open).  Events stored before sealing existed hold the fields in
clear and are read as they are -- until the registration is erased, then they
read as erased too (their clear text stays in the immutable row; see
docs/audit.md, "Events stored before sealing").

**Decoded form** (what every reader gets: the aggregate, the views, the notify
worker, ``GET /v1/ledger/events``, the Kafka relay): the fields as written plus
``"erased": false``; after erasure the fields are ``None`` and ``"erased":
true``.  Opening happens in one place, :func:`open_state`, called by the event
store's mapper (``ledger.application``) and by the views' fast decoder.  A
reader that shows none of the fields (the relay without
``LEDGER_KAFKA_INCLUDE_PII``) does not open them: :func:`close_state` gives it
``erased`` alone, from whether the key is still there.

**Keys** live in ``personal_data_keys`` (migration 0010), each wrapped with
``LEDGER_SECRET_KEY`` (``ledger.secret_box``).  A new registration's key is
inserted *in the same transaction* as its first event (the recorder asks
:meth:`Keyring.pending_rows`), so registering costs no extra round trip and no
event can be stored without its key.  Keys read are cached (bounded LRU, entries
trusted for :data:`CACHE_SECONDS`); readers of whole batches (the log API, the
relay, the views) refresh their batch's keys first with one query, so they never
show data erased by another process.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.domain.registration import Registration
from ledger.randomness import random_bytes
from ledger.secret_box import SecretBox
from ledger.stored_state import plain_json

#: Event class → its fields that are personal data (sealed when stored).
PERSONAL_FIELDS: dict[type[Any], tuple[str, ...]] = {
    Registration.Registered: ("name", "email", "fields"),
    Registration.EmailDeliveryFailed: ("reason",),
}
#: Stored state key that holds the sealed fields.
SEALED = "sealed"
#: Decoded state key: True when the fields were erased.
ERASED = "erased"
#: How long a cached key is trusted without asking the database again.
CACHE_SECONDS = 30.0
#: Keys kept in memory at most (cache and keys waiting for their first commit).
MAX_CACHED_KEYS = 10_000
KEY_BYTES = 32

_KEY_LABEL = "personal-data-key:"

#: A cache entry: the key, or ``None`` for an erased registration, or
#: ``_NO_ROW`` for a registration without a key row (stored before sealing).
_NO_ROW = b""


class PersonalDataUnreadable(Exception):
    """A sealed event whose key is present but does not open it: the row or
    the key was altered.  Never shown to people; the proof (``ledger verify``)
    names the altered event."""


Transaction = Callable[[], AbstractContextManager[Any]]


class Keyring:
    """The per-registration data keys, for sealing and opening.

    Thread-safe.  ``transaction`` opens a transaction on the project's own
    tables (``Database.transaction``)."""

    def __init__(
        self, box: SecretBox, transaction: Transaction, *, cache_seconds: float = CACHE_SECONDS,
        max_keys: int = MAX_CACHED_KEYS, monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._box = box
        self._transaction = transaction
        self._cache_seconds = cache_seconds
        self._max = max_keys
        self._now = monotonic
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()
        self._pending: OrderedDict[str, bytes] = OrderedDict()

    # --- wrapping ---------------------------------------------------------------------

    def _wrap(self, rid: str, key: bytes) -> bytes:
        """``self._box.seal(_KEY_LABEL + rid, {"k": <base64 of the key>})``,
        its JSON written directly (base64 needs no escaping): the same
        plaintext, without building a JSON encoder for every new registration."""
        return self._box.seal_encoded(_KEY_LABEL + rid, b'{"k": "' + base64.b64encode(key) + b'"}')

    def _unwrap(self, rid: str, wrapped: bytes) -> bytes:
        try:
            return base64.b64decode(self._box.open(_KEY_LABEL + rid, wrapped)["k"])
        except InvalidTag as exc:  # every process must run with the same secret key
            raise PersonalDataUnreadable(
                f"the data key of registration {rid} does not unwrap: is LEDGER_SECRET_KEY the key it was"
                " wrapped with?") from exc

    # --- the cache --------------------------------------------------------------------

    def _remember(self, rid: str, value: bytes | None) -> None:
        with self._lock:
            self._cache[rid] = (self._now(), value)
            self._cache.move_to_end(rid)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)

    def _cached(self, rid: str) -> tuple[bool, bytes | None]:
        with self._lock:
            pending = self._pending.get(rid)
            if pending is not None:
                return True, pending
            entry = self._cache.get(rid)
            if entry is None or self._now() - entry[0] > self._cache_seconds:
                return False, None
            self._cache.move_to_end(rid)
            return True, entry[1]

    def forget(self, registration_ids: Iterable[UUID | str]) -> None:
        """Drop keys from this process's memory (after erasing them)."""
        with self._lock:
            for rid in map(str, registration_ids):
                self._cache.pop(rid, None)
                self._pending.pop(rid, None)

    def refresh(self, registration_ids: Iterable[UUID | str]) -> None:
        """Read these registrations' keys from the database now (one query),
        replacing what the cache holds: a batch reader's view is then exactly
        the database's, whatever another process erased meanwhile."""
        wanted = sorted({str(r) for r in registration_ids})
        if not wanted:
            return
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT registration_id::text, wrapped_key FROM personal_data_keys"
                " WHERE registration_id = ANY(%s::uuid[])", (wanted,),
            ).fetchall()
        found = {rid: (self._unwrap(rid, bytes(w)) if w is not None else None) for rid, w in rows}
        for rid in wanted:
            with self._lock:
                if rid in self._pending:
                    continue
            self._remember(rid, found.get(rid, _NO_ROW))

    def holds_keys(self, registration_ids: Iterable[UUID | str]) -> dict[str, bool]:
        """Whether each registration's key row holds a key (``False``: erased;
        absent: no row, e.g. stored before sealing), fresh from the database
        in one query -- without unwrapping any key or touching the cache: what
        :func:`close_state` needs."""
        wanted = sorted({str(r) for r in registration_ids})
        if not wanted:
            return {}
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT registration_id::text, wrapped_key IS NOT NULL FROM personal_data_keys"
                " WHERE registration_id = ANY(%s::uuid[])", (wanted,),
            ).fetchall()
        return {rid: bool(held) for rid, held in rows}

    def stored_key(self, rid: str) -> bytes | None:
        """The key in the table now, whatever this process holds pending:
        when a pending key does not open a stored event, another writer
        created the same registration id first and committed its own key
        (the pending one belongs to a save that is about to fail)."""
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT registration_id::text, wrapped_key FROM personal_data_keys"
                " WHERE registration_id = ANY(%s::uuid[])", ([rid],),
            ).fetchall()
        wrapped = rows[0][1] if rows else None
        return None if wrapped is None else self._unwrap(rid, bytes(wrapped))

    def _lookup(self, rid: str) -> bytes | None:
        """The key (``_NO_ROW`` when there is no row, ``None`` when erased)."""
        hit, value = self._cached(rid)
        if not hit:
            self.refresh([rid])
            hit, value = self._cached(rid)
        return value if hit else _NO_ROW

    # --- sealing (the write path) -----------------------------------------------------

    def key_for_sealing(self, rid: str, *, new: bool) -> bytes | None:
        """The key new personal data of ``rid`` is sealed with; ``None`` when
        the registration is erased (then nothing personal is stored).  A new
        registration (``new``), or one stored before sealing existed, gets a
        fresh key, inserted with its events (:meth:`pending_rows`)."""
        if not new:
            key = self._lookup(rid)
            if key == _NO_ROW:  # ask again: another process may have created one meanwhile
                self.refresh([rid])
                key = self._lookup(rid)
            if key is None or key != _NO_ROW:
                return key
        key = random_bytes(KEY_BYTES)
        with self._lock:
            self._pending[rid] = key
            self._pending.move_to_end(rid)
            while len(self._pending) > self._max:
                self._pending.popitem(last=False)
        return key

    def pending_rows(self, registration_ids: Iterable[UUID | str]) -> list[tuple[str, bytes]]:
        """(registration id, wrapped key) of the new keys these events need,
        for the recorder to insert in the events' transaction.  They stay
        pending until :meth:`committed` (a group commit may be retried)."""
        with self._lock:
            keys = [(rid, self._pending[rid]) for rid in {str(r) for r in registration_ids} if rid in self._pending]
        return [(rid, self._wrap(rid, key)) for rid, key in keys]

    def discard(self, registration_ids: Iterable[UUID | str]) -> None:
        """The events sealed with these pending keys were not stored: drop the
        keys (the committed one, if any, is read from the table again)."""
        with self._lock:
            for rid in {str(r) for r in registration_ids}:
                self._pending.pop(rid, None)

    def committed(self, registration_ids: Iterable[UUID | str]) -> None:
        """The events (and their new keys) committed: the keys are ordinary
        cached keys from now on."""
        for rid in {str(r) for r in registration_ids}:
            with self._lock:
                key = self._pending.pop(rid, None)
            if key is not None:
                self._remember(rid, key)

    # --- opening (the read path) ------------------------------------------------------

    def key_for_opening(self, rid: str) -> bytes | None:
        """The key, or ``None`` when erased (or never stored)."""
        key = self._lookup(rid)
        return None if key == _NO_ROW else key

    def is_erased(self, rid: str) -> bool:
        """Whether the registration was erased (a clear-text event of it then
        reads as erased too)."""
        return self._lookup(rid) is None


def _aad(registration_id: str, version: int) -> bytes:
    return f"{registration_id}/{version}".encode()


def seal_state(
    state: dict[str, Any], cls: type[Any], registration_id: UUID | str, version: int, keyring: Keyring,
) -> None:
    """Replace ``cls``'s personal fields in ``state`` (a stored event's state,
    about to be encoded) by their ciphertext.  No-op for other events."""
    names = PERSONAL_FIELDS.get(cls)
    if names is None:
        return
    rid = str(registration_id)
    personal = {name: state.pop(name, None) for name in names}
    state.pop(ERASED, None)
    key = keyring.key_for_sealing(rid, new=cls is Registration.Registered)
    if key is None:  # erased: nothing personal is stored any more
        return
    nonce = random_bytes(12)
    plain = plain_json(personal)  # json.dumps(separators=(",", ":"), ensure_ascii=False), byte for byte
    state[SEALED] = base64.b64encode(nonce + AESGCM(key).encrypt(nonce, plain, _aad(rid, version))).decode()


def open_state(
    state: dict[str, Any], cls: type[Any], registration_id: UUID | str, version: int, keyring: Keyring | None,
) -> None:
    """Put ``cls``'s personal fields back into a decoded ``state``, or
    ``None`` for each with ``erased`` True.  Clear-text (older) events keep
    their fields unless the registration was erased."""
    names = PERSONAL_FIELDS.get(cls)
    if names is None:
        return
    rid = str(registration_id)
    sealed = state.pop(SEALED, None)
    if sealed is None:
        # Clear text (stored before sealing), or nothing (stored after erasure).
        erased = not all(n in state for n in names) or (keyring is not None and keyring.is_erased(rid))
    else:
        key = keyring.key_for_opening(rid) if keyring is not None else None
        erased = key is None
        if key is not None:
            raw = base64.b64decode(sealed)
            try:
                plain = AESGCM(key).decrypt(raw[:12], raw[12:], _aad(rid, version))
            except InvalidTag as exc:
                # A key pending in this process for the same id (a racing
                # create that will fail) shadows the committed one: ask the table.
                stored = keyring.stored_key(rid) if keyring is not None else None
                if stored is None or stored == key:
                    raise PersonalDataUnreadable(
                        f"the personal data of {rid} version {version} does not open") from exc
                try:
                    plain = AESGCM(stored).decrypt(raw[:12], raw[12:], _aad(rid, version))
                except InvalidTag as again:
                    raise PersonalDataUnreadable(
                        f"the personal data of {rid} version {version} does not open") from again
            state.update(json.loads(plain))
    if erased:
        for name in names:
            state[name] = None
    state[ERASED] = erased


def close_state(state: dict[str, Any], cls: type[Any], holds_key: bool | None) -> None:
    """What :func:`open_state` leaves in ``state`` minus ``cls``'s personal
    fields themselves, for a reader that shows none of them (the Kafka relay
    without LEDGER_KAFKA_INCLUDE_PII): ``erased`` only.

    Why: such a reader then never decrypts, nor unwraps a key: it never holds
    the personal data in clear at all, and saves the AES work per event.
    ``holds_key`` is :meth:`Keyring.holds_keys`'s answer for the registration
    (``None``: no key row), read fresh for the batch, so ``erased`` is what
    :func:`open_state` says.  Unlike :func:`open_state` it cannot notice a
    sealed value altered in its row (it does not open it); ``ledger verify``
    does, from the hash chain."""
    names = PERSONAL_FIELDS.get(cls)
    if names is None:
        return
    sealed = state.pop(SEALED, None)
    if sealed is None:  # clear text (stored before sealing), or nothing (stored after erasure)
        erased = not all(n in state for n in names) or holds_key is False
    else:
        erased = holds_key is not True
    for name in names:
        state.pop(name, None)
    state[ERASED] = erased


def registration_ids(events: Iterable[tuple[UUID | str, str]], topics: frozenset[str]) -> Iterator[str]:
    """The registration ids among (originator id, topic) pairs whose topic is
    one of ``topics`` (the personal events'): what a batch reader refreshes."""
    for originator_id, topic in events:
        if topic in topics:
            yield str(originator_id)
