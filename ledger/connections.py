"""Provider credentials: encrypted at rest, outside the event store.

The event ``ProviderConnected`` only says *that* a provider was connected and
shows masked credentials; the secrets themselves live in ``provider_secrets``,
sealed with ``LEDGER_SECRET_KEY`` — so they can never reach the event log,
Kafka or a projection.
"""

from __future__ import annotations

from collections.abc import Mapping

from psycopg.errors import UniqueViolation

from ledger.database import Database
from ledger.errors import NotFound
from ledger.secret_box import SecretBox


def store_secrets(
    db: Database, box: SecretBox, *, connection_id: str, organizer_id: str, creds: Mapping[str, str]
) -> None:
    sealed = box.seal(connection_id, dict(creds))
    try:
        with db.transaction() as conn:
            conn.execute(
                "INSERT INTO provider_secrets (connection_id, organizer_id, ciphertext) "
                "VALUES (%s, %s, %s) ON CONFLICT (connection_id) DO NOTHING",
                (connection_id, organizer_id, sealed),
            )
    except UniqueViolation:  # pragma: no cover - ON CONFLICT covers it
        pass


def load_secrets(db: Database, box: SecretBox, connection_id: str) -> dict[str, str]:
    with db.transaction() as conn:
        row = conn.execute(
            "SELECT ciphertext FROM provider_secrets WHERE connection_id = %s", (connection_id,)
        ).fetchone()
    if row is None:
        raise NotFound(f"no credentials for connection {connection_id}")
    return box.open(connection_id, bytes(row[0]))
