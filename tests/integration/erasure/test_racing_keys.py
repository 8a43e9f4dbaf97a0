"""Two writers create the same registration id at once (one derived id, two
processes): the loser's new data key is pending in its process while the
winner's key is the one stored (R24).  Reads in the losing process must open
the stored events all the same, and the failed save leaves no key behind."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

from ledger.money import Money
from tests.support.postgres import TestServer
from tests.support.two_ledgers import two_ledgers


def test_a_pending_key_of_a_racing_create_never_shadows_the_stored_one(
    pg_server: TestServer, tmp_path: Path,
) -> None:
    url = pg_server.new_database()
    with two_ledgers(url, tmp_path) as (a, b):
        org = a.service.register_organizer(name="O", country="US", plan_size=10)
        a.service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
        event_id = str(a.service.create_event(
            organizer_id=str(org.id), title="T", description="", timezone="UTC", permanent=False,
            sessions=[datetime(2037, 12, 1, 17, tzinfo=UTC)], price=Money.parse("10.00", "USD"), provider="manual",
        ).id)
        derived = uuid.uuid4()
        keyring = b.store.keyring
        assert keyring is not None
        # B is sealing its own create of the same id (its save will conflict) ...
        keyring.key_for_sealing(str(derived), new=True)
        # ... while A's create of it commits first, with A's key.
        a.service.register_participant(event_id, name="Ada", email="ada@example.com", fields={}, new_id=derived)

        seen = b.service.registration(str(derived))
        assert (seen.name, seen.email) == ("Ada", "ada@example.com")
        # B's save then fails as a conflict, and its pending key goes with it.
        again = b.service.register_participant(event_id, name="Ada", email="ada@example.com", fields={},
                                               new_id=derived)
        assert str(again.id) == str(derived) and again.name == "Ada"
        keyring.discard([str(derived)])
        assert b.service.registration(str(derived)).name == "Ada"
