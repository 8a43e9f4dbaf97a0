"""Provider credentials at rest: AES-256-GCM with ``LEDGER_SECRET_KEY``.

The connection id is bound as associated data, so a ciphertext copied onto
another connection's row fails to decrypt instead of leaking credentials
to the wrong organizer.
"""

from __future__ import annotations

import json

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.randomness import random_bytes


class SecretBox:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, connection_id: str, secrets: dict[str, str]) -> bytes:
        return self.seal_encoded(connection_id, json.dumps(secrets, sort_keys=True).encode())

    def seal_encoded(self, connection_id: str, plain: bytes) -> bytes:
        """:meth:`seal` of secrets already encoded as ``seal`` encodes them
        (``json.dumps(secrets, sort_keys=True)``): for a caller that writes
        that text more cheaply itself (the personal-data keyring, once per
        registration).  A fresh random nonce every call, as ``seal``."""
        nonce = random_bytes(12)
        return nonce + self._aead.encrypt(nonce, plain, connection_id.encode())

    def open(self, connection_id: str, sealed: bytes) -> dict[str, str]:
        plain = self._aead.decrypt(sealed[:12], sealed[12:], connection_id.encode())
        data: dict[str, str] = json.loads(plain)
        return data

    def __repr__(self) -> str:  # never show key material
        return "SecretBox(<key hidden>)"
