"""The wired-up ledger: one typed object that every entry point is handed.

``entrypoints.bootstrap`` builds it (the composition root); the API, the pages,
the workers and the CLI only *use* it.  Declaring it here, in the core, lets
every layer name it without importing the composition root, and a field that
was not wired is a type error or an ``AttributeError`` at start-up -- never a
silently skipped step (the first release kept optional extras in a dict, and a
missing entry quietly skipped the checkout).
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.application import LedgerStore
from ledger.checkout import CheckoutStarter
from ledger.clock import Clock
from ledger.config import Settings
from ledger.database import Database
from ledger.erasure import Erasures
from ledger.payment_intake import PaymentIntake
from ledger.provider_access import ProviderAccess
from ledger.provider_connections import ProviderConnector
from ledger.provider_notifications import NotificationReceiver
from ledger.registration_desk import RegistrationDesk
from ledger.secret_box import SecretBox
from ledger.service import LedgerService


@dataclass
class Ledger:
    """Everything with a connection, a key or a clock, built once per process.

    Use cases (whole commands with their provider calls) are fields too, so an
    endpoint, a page and a worker all call the same object.
    """

    settings: Settings
    #: The PostgreSQL URL everything here connects to.
    database_url: str
    #: The project's own tables (tokens, idempotency, secrets, read models).
    db: Database
    #: The event store (``eventsourcing`` application over PostgreSQL).
    store: LedgerStore
    #: One method per aggregate command (R5-R16).
    service: LedgerService
    #: Encrypts provider credentials at rest.
    secret_box: SecretBox
    clock: Clock
    #: Gateways, connections and decrypted credentials.
    providers: ProviderAccess
    #: Use case: connect a provider account (R1-R4).
    connector: ProviderConnector
    #: Use case: register a participant and open the checkout (R9, R1-R3).
    registrations: RegistrationDesk
    #: Opens (or finds again) a provider checkout for one registration.
    checkout: CheckoutStarter
    #: Provider facts (webhooks, returns, polling) become ledger commands.
    intake: PaymentIntake
    #: Use case: receive one provider notification (verify, keep, apply).
    notifications: NotificationReceiver
    #: Use case: erase participants' personal data (R24).
    erasures: Erasures

    def close(self) -> None:
        self.store.close()
        self.db.close()
