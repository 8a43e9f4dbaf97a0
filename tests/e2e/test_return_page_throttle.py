"""Return pages do not call the provider on every GET (issue 11 item 7).

The first release fetched the Checkout Session from Stripe, with the
organizer's key, for every anonymous GET of ``/return`` or ``/cancel``: 200
GETs, 200 Stripe calls.  Now each checkout is asked about at most
``LEDGER_RETURN_CHECKS_PER_MINUTE`` (3) times a minute, counted in PostgreSQL
so two API processes share the budget, and not at all once the registration no
longer awaits a payment.  The Stripe contract server counts the calls.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from entrypoints.bootstrap import bootstrap
from tests.contracts.stripe_contract import StripeContractServer
from tests.support.live_api import TIMEOUT, LiveApi, client_from, serve
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

SESSION_READS = r"/v1/checkout/sessions/[^/]+"


def _shop(live: LiveApi, stripe: StripeContractServer) -> tuple[str, str, str]:
    """(registration id, session id, return URL without the page name)."""
    org_id, headers = live.organizer()
    event, connection_id = live.event(headers, org_id, "stripe", stripe.credentials())
    r = requests.post(f"{live.url}/v1/events/{event['id']}/registrations",
                      json={"name": "Ada", "email": "ada@example.test"}, timeout=TIMEOUT)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    session_id = next(s["id"] for s in stripe.sessions.values() if s["metadata"]["registration_id"] == rid)
    return rid, session_id, f"/v1/webhooks/stripe/{connection_id}"


def _hit(urls: list[str], rid: str, session_id: str) -> list[tuple[int, str]]:
    client = client_from("127.0.0.1")

    def get(url: str) -> tuple[int, str]:
        r = client.get(url, params={"registration_id": rid, "session_id": session_id}, timeout=TIMEOUT)
        return r.status_code, r.json()["status"]

    with ThreadPoolExecutor(max_workers=10) as pool:
        return list(pool.map(get, urls))


def test_two_hundred_return_page_hits_from_two_processes_make_three_provider_calls(
    pg_server: TestServer, tmp_path: Path, stripe_server: StripeContractServer
) -> None:
    url = pg_server.new_database()
    ledgers = [
        bootstrap(make_settings(tmp_path / name, LEDGER_STRIPE_API_BASE=stripe_server.base_url), url=url, pool_size=12)
        for name in ("a", "b")
    ]
    try:
        with serve(ledgers[0]) as first, serve(ledgers[1]) as second:
            rid, session_id, base = _shop(first, stripe_server)
            pages = [f"{api.url}{base}/{page}" for api in (first, second) for page in ("return", "cancel")]
            answers = _hit(pages * 50, rid, session_id)
            assert set(answers) == {(200, "awaiting_payment")}
            assert len(stripe_server.requests_to("GET", SESSION_READS)) == 3

            # Paid (the webhook said so): the pages answer from the ledger alone.
            stripe_server.complete(session_id)
            headers, body = stripe_server.signed(
                stripe_server.event("checkout.session.completed", stripe_server.sessions[session_id])
            )
            connection = base.rsplit("/", 1)[1]
            assert requests.post(f"{first.url}/v1/webhooks/stripe/{connection}", data=body, headers=headers,
                                 timeout=TIMEOUT).status_code == 200
            assert set(_hit(pages * 5, rid, session_id)) == {(200, "paid")}
            assert len(stripe_server.requests_to("GET", SESSION_READS)) == 3
    finally:
        for ledger in ledgers:
            ledger.close()


def test_a_participant_coming_back_after_paying_still_sees_it_at_once(
    pg_server: TestServer, tmp_path: Path, stripe_server: StripeContractServer
) -> None:
    """The budget is per checkout and allows a return before paying and one
    after, without any webhook (R1: Stripe keys without a webhook secret)."""
    settings = make_settings(tmp_path, LEDGER_STRIPE_API_BASE=stripe_server.base_url)
    ledger = bootstrap(settings, url=pg_server.new_database(), pool_size=8)
    try:
        with serve(ledger) as live:
            rid, session_id, base = _shop(live, stripe_server)
            assert _hit([f"{live.url}{base}/cancel"], rid, session_id) == [(200, "awaiting_payment")]
            stripe_server.complete(session_id)
            assert _hit([f"{live.url}{base}/return"], rid, session_id) == [(200, "paid")]
            assert len(stripe_server.requests_to("GET", SESSION_READS)) == 2
    finally:
        ledger.close()
