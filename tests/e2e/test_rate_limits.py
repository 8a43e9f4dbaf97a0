"""Per-client limits on every public operation (API.md "Rate limits"; issue 11
items 5 and 7), over real HTTP from distinct client addresses.

Over the limit: 429 problem+json ``rate_limited`` with ``Retry-After``; other
clients are not affected; the counters live in PostgreSQL, so two API
processes on one database enforce one limit between them.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from entrypoints.bootstrap import bootstrap
from ledger import rate_limit_counters
from ledger.container import Ledger
from tests.support.live_api import TIMEOUT, LiveApi, client_from, serve
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

LIMIT = "2 per minute"
TIGHT = {f"LEDGER_RATE_LIMIT_{name}": LIMIT for name in ("REGISTRATION", "CHECKOUT", "JOIN", "RETURN", "SIGN_IN")}


def _ledger(pg_server: TestServer, tmp_path: Path, url: str | None = None, **env: str) -> Ledger:
    return bootstrap(make_settings(tmp_path, **{**TIGHT, **env}), url=url or pg_server.new_database(), pool_size=8)


@pytest.fixture
def live(pg_server: TestServer, tmp_path: Path) -> Iterator[LiveApi]:
    ledger = _ledger(pg_server, tmp_path)
    try:
        with serve(ledger) as api:
            yield api
    finally:
        ledger.close()


Call = Callable[[requests.Session, LiveApi, str], requests.Response]


def _register(s: requests.Session, live: LiveApi, event_id: str) -> requests.Response:
    return s.post(f"{live.url}/v1/events/{event_id}/registrations",
                  json={"name": "A", "email": f"a+{uuid.uuid4().hex[:12]}@example.test"}, timeout=TIMEOUT)


def _sign_in(s: requests.Session, live: LiveApi, _: str) -> requests.Response:
    form = s.get(f"{live.url}/app/login", timeout=TIMEOUT).text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    return s.post(f"{live.url}/app/login", data={"csrf_token": csrf.group(1), "token": "ldg_guessed"},
                  allow_redirects=False, timeout=TIMEOUT)


OPERATIONS: dict[str, tuple[Call, int]] = {
    # name: (one call, the status it answers under the limit)
    "registration": (_register, 201),
    "checkout": (lambda s, live, _: s.post(f"{live.url}/v1/registrations/{'0' * 8}/checkout", timeout=TIMEOUT), 404),
    "join": (lambda s, live, _: s.get(f"{live.url}/v1/join/ldg_unknown", timeout=TIMEOUT), 404),
    "join page": (lambda s, live, _: s.get(f"{live.url}/join/unknown", timeout=TIMEOUT), 404),
    "return": (lambda s, live, _: s.get(f"{live.url}/v1/webhooks/stripe/x/return?registration_id=y",
                                        timeout=TIMEOUT), 404),
    "cancel": (lambda s, live, _: s.get(f"{live.url}/v1/webhooks/stripe/x/cancel?registration_id=y",
                                        timeout=TIMEOUT), 404),
    "sign-in": (_sign_in, 401),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_over_the_limit_is_429_with_retry_after_for_that_client_only(live: LiveApi, operation: str) -> None:
    call, ok = OPERATIONS[operation]
    org_id, headers = live.organizer()
    event, _ = live.event(headers, org_id, "manual")
    greedy, other = client_from("127.0.0.1"), client_from("127.0.0.2")
    assert [call(greedy, live, event["id"]).status_code for _ in range(2)] == [ok, ok]
    refused = call(greedy, live, event["id"])
    assert refused.status_code == 429, refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    if refused.headers["Content-Type"].startswith("application/problem+json"):
        assert refused.json()["code"] == "rate_limited"
    else:  # the sign-in page answers as a page, with the same status and header
        assert "Too many requests" in refused.text
    assert call(other, live, event["id"]).status_code == ok


def test_the_join_api_and_page_share_one_limit_and_head_counts(live: LiveApi) -> None:
    client = client_from("127.0.0.1")
    assert client.head(f"{live.url}/v1/join/ldg_unknown", timeout=TIMEOUT).status_code == 404
    assert client.get(f"{live.url}/join/unknown", timeout=TIMEOUT).status_code == 404
    assert client.get(f"{live.url}/v1/join/ldg_unknown", timeout=TIMEOUT).status_code == 429


def test_a_refused_request_claims_no_idempotency_key(pg_server: TestServer, tmp_path: Path) -> None:
    """The limit is checked before anything else: a 429 is not stored under
    its Idempotency-Key, so the same key works once the window has passed."""
    ledger = _ledger(pg_server, tmp_path, LEDGER_RATE_LIMIT_REGISTRATION="2 per 2 seconds")
    try:
        with serve(ledger) as live:
            org_id, headers = live.organizer()
            event, _ = live.event(headers, org_id, "manual")
            client = client_from("127.0.0.1")
            url = f"{live.url}/v1/events/{event['id']}/registrations"

            def register(key: str) -> requests.Response:
                return client.post(url, json={"name": "A", "email": f"a+{key}@example.test"},
                                   headers={"Idempotency-Key": key}, timeout=TIMEOUT)

            assert [register(k).status_code for k in ("k1", "k2")] == [201, 201]
            refused = register("k3")
            assert refused.status_code == 429
            time.sleep(int(refused.headers["Retry-After"]) + 0.1)
            again = register("k3")
            assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    finally:
        ledger.close()


def test_two_api_processes_on_one_database_enforce_one_limit(pg_server: TestServer, tmp_path: Path) -> None:
    url = pg_server.new_database()
    a, b = _ledger(pg_server, tmp_path / "a", url), _ledger(pg_server, tmp_path / "b", url)
    try:
        with serve(a) as first, serve(b) as second:
            client = client_from("127.0.0.1")
            path = "/v1/join/ldg_unknown"
            answers = [client.get(f"{api.url}{path}", timeout=TIMEOUT).status_code for api in (first, second, first)]
            assert answers == [404, 404, 429]
    finally:
        a.close()
        b.close()


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(pg_server: TestServer, tmp_path: Path) -> None:
    ledger = _ledger(pg_server, tmp_path, LEDGER_TRUSTED_PROXIES="1")
    try:
        with serve(ledger) as live:
            proxy = client_from("127.0.0.1")

            def join(forwarded: str) -> int:
                return proxy.get(f"{live.url}/v1/join/ldg_unknown", headers={"X-Forwarded-For": forwarded},
                                 timeout=TIMEOUT).status_code

            # The client cannot pick its identity: only the proxy's (rightmost) entry counts.
            assert [join("6.6.6.6, 203.0.113.7"), join("7.7.7.7, 203.0.113.7"), join("203.0.113.7")] == [404, 404, 429]
            assert join("203.0.113.8") == 404
            # An IPv6 client is its /64: rotating the interface id does not help.
            assert [join("2001:db8::1"), join("2001:db8::2"), join("2001:db8::ffff")] == [404, 404, 429]
    finally:
        ledger.close()


def test_per_process_counters_when_configured(pg_server: TestServer, tmp_path: Path) -> None:
    ledger = _ledger(pg_server, tmp_path, LEDGER_RATE_LIMIT_STORAGE="memory")
    try:
        with serve(ledger) as live:
            client = client_from("127.0.0.1")
            answers = [client.get(f"{live.url}/v1/join/ldg_unknown", timeout=TIMEOUT).status_code for _ in range(3)]
            assert answers == [404, 404, 429]
        with ledger.db.transaction() as conn:
            assert conn.execute("SELECT count(*) FROM rate_limit_counters").fetchone() == (0,)
    finally:
        ledger.close()


def test_counters_whose_window_ended_are_purged_in_bounded_batches(fresh_ledger: Ledger) -> None:
    db = fresh_ledger.db
    ended = datetime.now(UTC) - timedelta(minutes=1)
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO rate_limit_counters (key, hits, expires_at) "
            "SELECT 'old-' || n, 1, %s FROM generate_series(1, %s) n",
            (ended, rate_limit_counters.PURGE_BATCH + 10),
        )
    assert rate_limit_counters.hit(db, "live", 60) == 1
    assert rate_limit_counters.purge(db) == rate_limit_counters.PURGE_BATCH
    assert rate_limit_counters.purge(db) == 10
    assert rate_limit_counters.hits(db, "live") == 1
    assert rate_limit_counters.hit(db, "x" * 1000, 60) == 1  # keys are cut to a bounded size
    assert rate_limit_counters.hits(db, "x" * rate_limit_counters.MAX_KEY_CHARS) == 1
