"""Who is asking, and which aggregates they may see.

A caller from one organizer must not learn that another organizer's ids exist:
lookups outside the caller's scope, and ids that are not UUIDs at all, both end
in the same ``NotFound`` (404), never a 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from ledger.errors import NotFound


@dataclass(frozen=True)
class Scope:
    """Who is asking: ``organizer_id`` None means every organizer (admin, finance,
    webhooks already bound to a connection)."""

    organizer_id: str | None = None

    def allows(self, organizer_id: str) -> bool:
        return self.organizer_id is None or self.organizer_id == organizer_id


ANYONE = Scope()


class Owned(Protocol):
    """An aggregate that belongs to one organizer, the one a ``Scope`` must allow."""

    @property
    def owner_id(self) -> str: ...


def parse_uuid(value: str | UUID, what: str) -> UUID:
    """``value`` as a UUID; anything else is an unknown ``what`` (``NotFound``)."""
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"no {what} {value!r}") from None
