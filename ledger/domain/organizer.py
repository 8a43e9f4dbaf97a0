"""The organizer: country, plan size (R9) and connected providers (R1–R4)."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.errors import InvalidState, ValidationFailed
from ledger.pricing import check_provider_country


class Organizer(Aggregate):
    """Owns an account on a plan with a participant limit (R9)."""

    class Registered(Aggregate.Created):
        name: str
        country: str
        plan_size: int

    @event(Registered)
    def __init__(self, name: str, country: str, plan_size: int) -> None:
        self.name = name
        self.country = country
        self.plan_size = plan_size
        self.connections: dict[str, dict[str, Any]] = {}

    @classmethod
    def register(cls, *, id: UUID, name: str, country: str, plan_size: int) -> Organizer:
        _check_plan_size(plan_size)
        return cls._create(cls.Registered, id=id, name=name, country=country, plan_size=plan_size)

    @property
    def owner_id(self) -> str:
        """The organizer a scope must allow to see this aggregate: itself."""
        return str(self.id)

    class PlanChanged(Aggregate.Event):
        plan_size: int
        previous_plan_size: int

    def change_plan(self, plan_size: int) -> None:
        """R9: the plan size limits future sales; tickets already sold stay sold."""
        _check_plan_size(plan_size)
        if plan_size != self.plan_size:
            self._plan_changed(plan_size=plan_size, previous_plan_size=self.plan_size)

    @event(PlanChanged)
    def _plan_changed(self, plan_size: int, previous_plan_size: int) -> None:
        self.plan_size = plan_size

    class ContactChanged(Aggregate.Event):
        """The organizer's contact e-mail (business contact data, not a
        participant's personal data): where the notify worker writes about
        disputes, reversals and failed refunds.  ``None``: no contact e-mail."""

        class_version = 1
        contact_email: str | None

    def change_contact(self, email: str | None) -> bool:
        """Set, change or remove (``None``) the contact e-mail; recording
        nothing when it is already that address."""
        email = check_contact_email(email)
        if email == self.email:
            return False
        self._contact_changed(contact_email=email)
        return True

    @event(ContactChanged)
    def _contact_changed(self, contact_email: str | None) -> None:
        vars(self)["_email"] = contact_email

    @property
    def email(self) -> str | None:
        """The contact e-mail, if any (kept beside the state, so organizers
        cached or snapshotted before contacts existed still load)."""
        found: str | None = vars(self).get("_email")
        return found

    class ProviderConnected(Aggregate.Event):
        connection_id: str
        provider: str
        masked: dict[str, str]

    def connect_provider(self, connection_id: str, provider: str, masked: dict[str, str]) -> None:
        """R1–R4.  ``masked`` shows which credentials were given, never the secrets
        themselves (they are kept encrypted outside the event store)."""
        check_provider_country(provider, self.country)
        if connection_id in self.connections:
            raise InvalidState("connection already exists")
        self._provider_connected(connection_id=connection_id, provider=provider, masked=masked)

    @event(ProviderConnected)
    def _provider_connected(self, connection_id: str, provider: str, masked: dict[str, str]) -> None:
        self.connections[connection_id] = {"provider": provider, "masked": masked}

    def connection_for(self, provider: str) -> str | None:
        """The newest connection of a provider, if any."""
        found = [cid for cid, c in self.connections.items() if c["provider"] == provider]
        return found[-1] if found else None


#: A conservative address shape: one ``@``, no spaces, a dot in the domain.
#: ASCII only, because the notify worker does not use SMTPUTF8.
_EMAIL = re.compile(r"^[-!#-'*+/-9=?A-Z^-~.]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


def check_contact_email(email: str | None) -> str | None:
    """The organizer's contact address, trimmed; ``None`` or ``""`` removes it."""
    if email is None or not email.strip():
        return None
    email = email.strip()
    if len(email) > 254 or not email.isascii() or _EMAIL.fullmatch(email) is None:
        raise ValidationFailed({"email": ["must be an e-mail address (ASCII, at most 254 characters)"]})
    return email


def _check_plan_size(plan_size: int) -> None:
    if not isinstance(plan_size, int) or isinstance(plan_size, bool) or plan_size < 1:
        raise ValidationFailed({"plan_size": ["must be a positive integer"]})
    if plan_size > 1_000_000:
        raise ValidationFailed({"plan_size": ["must be at most 1000000"]})
