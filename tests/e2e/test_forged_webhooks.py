"""Forged webhooks cannot fill the database (issue 11 item 6), over real HTTP.

500 unsigned ~61 KiB POSTs to ``/v1/webhooks/stripe/{connection}``: each is a
400 ``invalid_signature`` and each is *counted* (per connection and
verification result), but only a ring of the latest is kept, each body cut
short and overwritten in place -- so the tables stay the same size however
many arrive, without waiting for VACUUM.
"""

from __future__ import annotations

import base64
import json
import os
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from entrypoints.bootstrap import bootstrap
from ledger.container import Ledger
from ledger.providers import inbox
from tests.contracts.stripe_contract import StripeContractServer
from tests.support.live_api import TIMEOUT, LiveApi, client_from, serve
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

FORGED = 500
BODY_BYTES = 61 * 1024
TABLES = ("provider_inbox", "provider_delivery_counts", "provider_rejected_deliveries")


@pytest.fixture
def live(pg_server: TestServer, tmp_path: Path, stripe_server: StripeContractServer) -> Iterator[LiveApi]:
    settings = make_settings(tmp_path, LEDGER_STRIPE_API_BASE=stripe_server.base_url)
    ledger = bootstrap(settings, url=pg_server.new_database(), pool_size=16)
    try:
        with serve(ledger) as api:
            yield api
    finally:
        ledger.close()


def _storage_bytes(ledger: Ledger) -> int:
    """Tables, TOAST and indexes on disk (no VACUUM: bounded without it)."""
    with psycopg.connect(ledger.database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(t)) FROM unnest(%s::regclass[]) t", (list(TABLES),)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _forged_body(i: int) -> bytes:
    filler = base64.b64encode(os.urandom(BODY_BYTES)).decode()[: BODY_BYTES - 200]
    return json.dumps({"id": f"evt_forged_{i}", "type": "checkout.session.completed", "data": filler}).encode()


def _flood(live: LiveApi, url: str, first: int) -> Counter[int]:
    client = client_from("127.0.0.1")

    def post(i: int) -> int:
        return client.post(url, data=_forged_body(i), headers={"Content-Type": "application/json"},
                           timeout=TIMEOUT).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        return Counter(pool.map(post, range(first, first + FORGED)))


def test_five_hundred_forged_deliveries_are_counted_and_storage_stays_bounded(
    live: LiveApi, stripe_server: StripeContractServer
) -> None:
    org_id, headers = live.organizer()
    _, connection_id = live.event(headers, org_id, "stripe", stripe_server.credentials())
    url = f"{live.url}/v1/webhooks/stripe/{connection_id}"
    before = _storage_bytes(live.ledger)

    assert _flood(live, url, 0) == {400: FORGED}
    first_batch = _storage_bytes(live.ledger)
    assert inbox.delivery_counts(live.ledger.db, connection_id) == {"invalid_signature": FORGED}
    with live.ledger.db.transaction() as conn:
        kept, longest, sizes = conn.execute(
            "SELECT count(*), max(octet_length(body)), array_agg(DISTINCT body_size) "
            "FROM provider_rejected_deliveries WHERE connection_id = %s",
            (connection_id,),
        ).fetchone() or (0, 0, [])
        whole = conn.execute("SELECT count(*) FROM provider_inbox WHERE connection_id = %s", (connection_id,))
        assert whole.fetchone() == (0,)
    assert kept == inbox.REJECTED_SAMPLE
    assert longest == inbox.SAMPLE_BODY_BYTES and min(sizes) > BODY_BYTES - 300  # the real size is noted

    # As many again: counted, and the storage does not grow with them.
    assert _flood(live, url, FORGED) == {400: FORGED}
    second_batch = _storage_bytes(live.ledger)
    assert inbox.delivery_counts(live.ledger.db, connection_id) == {"invalid_signature": 2 * FORGED}
    print(f"\nstorage: before {before} B, after {FORGED} forged {first_batch} B, after {2 * FORGED} {second_batch} B")
    assert first_batch - before < 512 * 1024  # the first release kept ~32 MB
    assert second_batch - first_batch < 64 * 1024


def test_a_verified_delivery_is_still_kept_whole_beside_the_sample(
    live: LiveApi, stripe_server: StripeContractServer
) -> None:
    org_id, headers = live.organizer()
    event, connection_id = live.event(headers, org_id, "stripe", stripe_server.credentials())
    client = client_from("127.0.0.1")
    reg = client.post(f"{live.url}/v1/events/{event['id']}/registrations",
                      json={"name": "Ada", "email": "ada@example.test"}, timeout=TIMEOUT).json()
    session = stripe_server.complete(next(iter(stripe_server.sessions)))
    signed_headers, body = stripe_server.signed(stripe_server.event("checkout.session.completed", session))
    url = f"{live.url}/v1/webhooks/stripe/{connection_id}"
    assert client.post(url, data=body, headers=signed_headers, timeout=TIMEOUT).status_code == 200
    assert client.post(url, data=b"x" * 5000, timeout=TIMEOUT).status_code == 400
    assert inbox.delivery_counts(live.ledger.db, connection_id) == {"verified": 1, "invalid_signature": 1}
    with live.ledger.db.transaction() as conn:
        kept = conn.execute("SELECT verification, body FROM provider_inbox WHERE connection_id = %s",
                            (connection_id,)).fetchall()
        sample = conn.execute("SELECT verification, octet_length(body), body_size FROM provider_rejected_deliveries "
                              "WHERE connection_id = %s", (connection_id,)).fetchall()
    assert [(v, bytes(b) == body) for v, b in kept] == [("verified", True)]
    assert sample == [("invalid_signature", inbox.SAMPLE_BODY_BYTES, 5000)]
    assert session["metadata"]["registration_id"] == reg["id"]
