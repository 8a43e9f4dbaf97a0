"""Provider gateways, connections and decrypted credentials, in one place.

Every use case that talks to a provider (connecting, opening a checkout,
receiving a notification, polling) goes through :class:`ProviderAccess`, so
credentials are decrypted in exactly one spot, just before a provider call.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from ledger import connections
from ledger.database import Database
from ledger.errors import NotFound
from ledger.providers.base import Credentials, PaymentGateway
from ledger.providers.registry import GATEWAY_PROVIDERS, ProviderEndpoints, gateway_for
from ledger.secret_box import SecretBox
from ledger.service import LedgerService


@dataclass(frozen=True)
class Connection:
    """A connected provider account: whose it is and which provider."""

    id: str
    organizer_id: str
    provider: str


class ProviderAccess:
    """Gateways, connections and decrypted credentials, in one place.

    Gateways are stateless and thread-safe (``PaymentGateway``), so one per
    provider is shared by every request and worker thread.
    """

    def __init__(
        self, *, db: Database, secret_box: SecretBox, service: LedgerService, endpoints: ProviderEndpoints
    ) -> None:
        self.db = db
        self.service = service
        self.endpoints = endpoints
        self.secret_box = secret_box
        self._gateways: dict[str, PaymentGateway] = {}
        self._lock = threading.Lock()

    def gateway(self, provider: str) -> PaymentGateway:
        with self._lock:
            found = self._gateways.get(provider)
            if found is None:
                found = self._gateways[provider] = gateway_for(provider, self.endpoints)
            return found

    def point_at(self, endpoints: ProviderEndpoints) -> None:
        """Send later provider calls to ``endpoints`` (tests swap contract
        servers on a running ledger); gateways are rebuilt on next use."""
        with self._lock:
            self.endpoints = endpoints
            self._gateways.clear()

    def validate_credentials(self, provider: str, creds: Mapping[str, str]) -> None:
        """One harmless call at the provider (R1: Stripe probes each
        restricted-key permission)."""
        self.gateway(provider).validate_credentials(creds)

    def connection(self, connection_id: str) -> Connection:
        """The connection behind a webhook URL; unknown ids are 404.

        The owner comes from ``provider_secrets`` (written before the
        ``ProviderConnected`` event), the provider from the organizer's
        events: secrets orphaned by a crash before the event are no
        connection.
        """
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT organizer_id FROM provider_secrets WHERE connection_id = %s", (connection_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no provider connection {connection_id}")
        organizer = self.service.organizer(str(row[0]))
        found = organizer.connections.get(connection_id)
        if found is None:
            raise NotFound(f"no provider connection {connection_id}")
        return Connection(connection_id, str(organizer.id), str(found["provider"]))

    def connection_of(self, provider: str, connection_id: str) -> Connection:
        """The connection a provider's URL names, or 404: an unknown provider,
        an unknown connection and another provider's connection look the same."""
        if provider not in GATEWAY_PROVIDERS:
            raise NotFound(f"no webhook for provider {provider!r}")
        connection = self.connection(connection_id)
        if connection.provider != provider:
            raise NotFound(f"no {provider} connection {connection_id}")
        return connection

    def credentials(self, connection_id: str) -> Credentials:
        return connections.load_secrets(self.db, self.secret_box, connection_id)
