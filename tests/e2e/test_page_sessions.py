"""Signing out ends the session on the server (issue 11 item 8), over real HTTP.

The first release kept the whole session in the signed cookie, so a copy taken
before ``POST /app/logout`` still worked for 8 h.  Now the cookie names a
server-side session that logout revokes: every copy gets the sign-in page.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from entrypoints.bootstrap import bootstrap
from ledger import api_tokens, page_sessions
from tests.support.live_api import TIMEOUT, LiveApi, serve
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

COOKIE = "ledger_session"


@pytest.fixture
def live(pg_server: TestServer, tmp_path: Path) -> Iterator[LiveApi]:
    settings = make_settings(tmp_path, LEDGER_MANUAL_HOLD_SECONDS="7200")
    ledger = bootstrap(settings, url=pg_server.new_database(), pool_size=8)
    try:
        with serve(ledger) as api:
            yield api
    finally:
        ledger.close()


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def _signed_in(live: LiveApi, token: str) -> requests.Session:
    browser = requests.Session()
    form = browser.get(f"{live.url}/app/login", timeout=TIMEOUT)
    r = browser.post(f"{live.url}/app/login", data={"csrf_token": _csrf(form.text), "token": token}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.url.endswith("/app/events"), r.url
    return browser


def _with_cookie(live: LiveApi, value: str) -> requests.Session:
    thief = requests.Session()
    thief.cookies.set(COOKIE, value, domain="127.0.0.1", path="/app")
    return thief


def _events_page(session: requests.Session, live: LiveApi) -> requests.Response:
    return session.get(f"{live.url}/app/events", allow_redirects=False, timeout=TIMEOUT)


def test_a_cookie_copied_before_logout_no_longer_works(live: LiveApi) -> None:
    org_id, _ = live.organizer()
    token = live.tokens.organizer(org_id)
    browser = _signed_in(live, token)
    copied = browser.cookies.get(COOKIE, path="/app")
    assert copied and _events_page(_with_cookie(live, copied), live).status_code == 200

    page = _events_page(browser, live)
    r = browser.post(f"{live.url}/app/logout", data={"csrf_token": _csrf(page.text)}, timeout=TIMEOUT)
    assert r.status_code == 200 and r.url.endswith("/app/login")

    stolen = _events_page(_with_cookie(live, copied), live)
    assert stolen.status_code == 302 and "/app/login" in stolen.headers["Location"]


def test_logout_ends_only_its_own_session_and_revoking_the_token_ends_all(live: LiveApi) -> None:
    org_id, _ = live.organizer()
    token = live.tokens.organizer(org_id)
    laptop, phone = _signed_in(live, token), _signed_in(live, token)
    page = _events_page(laptop, live)
    laptop.post(f"{live.url}/app/logout", data={"csrf_token": _csrf(page.text)}, timeout=TIMEOUT)
    assert _events_page(laptop, live).status_code == 302
    assert _events_page(phone, live).status_code == 200
    assert api_tokens.revoke(live.ledger.db, token)
    assert _events_page(phone, live).status_code == 302  # at once: no cache in between


def test_expired_and_revoked_sessions_are_purged_in_bounded_batches(live: LiveApi) -> None:
    db = live.ledger.db
    with db.transaction() as conn:
        conn.execute(
            "INSERT INTO page_sessions (session_hash, token_hash, expires_at) "
            "SELECT 'old-' || n, 'x', %s FROM generate_series(1, %s) n",
            (datetime.now(UTC) - timedelta(hours=1), page_sessions.PURGE_BATCH + 7),
        )
    page_sessions.open_session(db, token_hash="t", lifetime=timedelta(hours=8))
    with db.transaction() as conn:
        assert conn.execute("SELECT count(*) FROM page_sessions").fetchone() == (8,)


def test_the_event_page_shows_held_seats_apart_and_how_long_they_are_held(live: LiveApi) -> None:
    org_id, headers = live.organizer()
    event, _ = live.event(headers, org_id, "manual")
    r = requests.post(f"{live.url}/v1/events/{event['id']}/registrations",
                      json={"name": "Ada", "email": "ada@example.test"}, timeout=TIMEOUT)
    assert r.status_code == 201
    browser = _signed_in(live, live.tokens.organizer(org_id))
    html = browser.get(f"{live.url}/app/events/{event['id']}", timeout=TIMEOUT).text
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "0 sold · 1 held · 49 left of 50" in text
    assert "holds its seat, unpaid, for 2 h (offline payment)" in text
