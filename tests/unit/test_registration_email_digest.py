"""The address digest every e-mail claim stores (``registration_emails``)
stays HMAC-SHA256 of the normalized address under the derived key, however it
is computed: the rows already stored must keep matching."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any, cast

from ledger.registration_emails import RegistrationEmails

SECRET = bytes.fromhex("22" * 32)


def _expected(address: str) -> bytes:
    key = hmac.new(SECRET, b"ledger/registration-email-digest/v1", hashlib.sha256).digest()
    return hmac.new(key, address.strip().casefold().encode(), hashlib.sha256).digest()


def test_the_digest_is_the_stored_one_and_one_address_never_changes_another() -> None:
    emails = RegistrationEmails(cast(Any, None), SECRET)  # digests need no database
    addresses = ["Ada@Example.com ", "ada@example.com", "grace@example.org", "Ada@Example.com "]
    digests = [emails.digest(address) for address in addresses]
    assert digests == [_expected(address) for address in addresses]
    assert digests[0] == digests[1] == digests[3] != digests[2]
    assert digests[0].hex() == hmac.new(
        hmac.new(SECRET, b"ledger/registration-email-digest/v1", "sha256").digest(), b"ada@example.com", "sha256",
    ).hexdigest()
