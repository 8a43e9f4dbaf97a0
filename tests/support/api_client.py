"""Calling the HTTP API as someone: role tokens issued on a ledger, the
``Authorization`` header they go in, and an organizer with its headers."""

from __future__ import annotations

from dataclasses import dataclass

from ledger import api_tokens
from ledger.container import Ledger


@dataclass
class Tokens:
    admin: str
    finance: str
    ledger: Ledger

    @classmethod
    def issue(cls, ledger: Ledger) -> Tokens:
        """An admin and a finance token on ``ledger``."""
        return cls(
            admin=api_tokens.create_token(ledger.db, role="admin"),
            finance=api_tokens.create_token(ledger.db, role="finance"),
            ledger=ledger,
        )

    def organizer(self, organizer_id: str) -> str:
        return api_tokens.create_token(self.ledger.db, role="organizer", organizer_id=organizer_id)


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


@dataclass
class Org:
    """An organizer made through the API (``make_org``), with its token."""

    id: str
    token: str
    headers: dict[str, str]
