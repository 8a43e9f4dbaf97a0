"""Use case: connect an organizer's provider account (R1-R4).

One rule set for the API, the pages and event creation with an inline
connection (:meth:`ProviderConnector.create_event`): known fields only, none blank, R3's country rule *before* any
network call, one harmless call at the provider to prove the credentials, the
secrets sealed into ``provider_secrets`` before ``ProviderConnected`` is saved
(so a connection event never exists without its credentials), and only masked
values ever returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from ledger import connections
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.errors import ValidationFailed
from ledger.money import Money
from ledger.pricing import check_provider_country
from ledger.provider_access import ProviderAccess
from ledger.providers.credentials import mask, require_fields
from ledger.providers.registry import describe
from ledger.scope import ANYONE, Scope
from ledger.service import LedgerService


@dataclass(frozen=True)
class ConnectedProvider:
    """What the organizer may see of a new connection."""

    organizer: Organizer
    connection_id: str
    provider: str
    masked: dict[str, str]
    #: Where the provider should send notifications; ``None`` for manual.
    webhook_url: str | None


class ProviderConnector:
    def __init__(self, *, service: LedgerService, providers: ProviderAccess, public_url: str) -> None:
        self.service = service
        self.providers = providers
        self.public_url = public_url.rstrip("/")

    def connect(
        self, organizer_id: str, provider: str, fields: Mapping[str, object], *,
        scope: Scope = ANYONE, connection_id: str | None = None,
    ) -> ConnectedProvider:
        """Connect ``provider`` with the credential ``fields`` as entered.

        ``connection_id`` is derived from the request's idempotency key by the
        caller, so a retry after a crash finds the connection already there.
        """
        description = describe(provider)
        unknown = sorted(set(fields) - set(description.field_names()))
        if unknown:
            raise ValidationFailed({k: ["unknown field"] for k in unknown})
        creds: dict[str, str] = {}
        masked: dict[str, str] = {}
        if description.has_checkout:
            require_fields(description, fields)  # type: ignore[arg-type]
            # A blank optional field (Stripe's webhook secret) is no field.
            creds = {k: str(v).strip() for k, v in fields.items() if str(v).strip()}
            masked = mask(description, creds)
            # R3 before any network call: no credential check for a provider
            # the organizer may not use anyway.
            check_provider_country(provider, self.service.organizer(organizer_id, scope).country)
            self.providers.validate_credentials(provider, creds)
        organizer, cid = self.service.connect_provider(
            organizer_id, provider=provider, masked=masked, scope=scope, connection_id=connection_id,
            store_secrets=lambda cid: connections.store_secrets(
                self.providers.db, self.providers.secret_box, connection_id=cid,
                organizer_id=organizer_id, creds=creds,
            ),
        )
        webhook_url = f"{self.public_url}/v1/webhooks/{provider}/{cid}" if description.has_checkout else None
        return ConnectedProvider(organizer, cid, provider, masked, webhook_url)

    def create_event(
        self, organizer_id: str, *, connect: Mapping[str, object] | None, title: str, description: str,
        sessions: list[datetime], timezone: str, permanent: bool, price: Money, provider: str,
        scope: Scope = ANYONE, new_id: UUID | None = None, connection_id: str | None = None,
    ) -> tuple[PaidEvent, ConnectedProvider | None]:
        """Create a paid event, connecting its provider first when ``connect``
        carries a connection body (the article: "while creating a new paid
        event", R1-R4).

        Atomic where it matters: the event's own rules (country, price,
        dates) are checked before the provider is called, and a connection
        the provider refuses raises before anything is recorded -- so a failed
        connection creates no event, and a refused event leaves no connection.
        Idempotent: ``new_id`` and ``connection_id`` are derived from the
        request's key, so a retry after a crash between the two steps finds
        the connection and the event already there."""
        if connect is None:
            paid_event = self.service.create_event(
                organizer_id=organizer_id, title=title, description=description, sessions=sessions,
                timezone=timezone, permanent=permanent, price=price, provider=provider, scope=scope, new_id=new_id,
            )
            return paid_event, None
        fields = dict(connect)
        named = fields.pop("provider", provider)
        if named != provider:
            raise ValidationFailed({"connect.provider": [f"must be the event's provider ({provider})"]})
        organizer = self.service.organizer(organizer_id, scope)
        self.service.check_new_event(organizer, sessions=sessions, price=price, provider=provider)
        connected = self.connect(organizer_id, provider, fields, scope=scope, connection_id=connection_id)
        paid_event = self.service.create_event(
            organizer_id=organizer_id, title=title, description=description, sessions=sessions,
            timezone=timezone, permanent=permanent, price=price, provider=provider, scope=scope, new_id=new_id,
            connection_id=connected.connection_id,
        )
        return paid_event, connected
