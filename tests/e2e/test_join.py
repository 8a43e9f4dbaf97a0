"""``GET /v1/join/{token}`` through the app: valid for every session of the
event (R10), 404 when unknown or revoked (R15).  The token is issued here the
way the notify worker issues it (tests/integration/notify cover the worker)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask.testing import FlaskClient

from ledger import access_tokens
from ledger.container import Ledger
from tests.support.api_client import bearer


def _paid_registration(client: FlaskClient, event: dict[str, Any]) -> str:
    r = client.post(f"/v1/events/{event['id']}/registrations",
                    json={"name": "Ann", "email": f"ann+{uuid.uuid4().hex[:12]}@example.com"})
    assert r.status_code == 201, r.get_json()
    rid: str = r.get_json()["id"]
    r = client.post(f"/v1/registrations/{rid}/payments",
                    json={"amount": event["price"], "reference": f"bank-{rid[:8]}"},
                    headers=event["_org"].headers)
    assert r.status_code == 200, r.get_json()
    return rid


def _issue(ledger: Ledger, rid: str, event_id: str) -> str:
    with ledger.db.transaction() as conn:
        return access_tokens.issue(conn, secret_key=ledger.settings.secret_key, registration_id=rid,
                                   event_id=event_id, at=datetime.now(UTC))


def test_a_valid_token_opens_every_session_of_a_permanent_event(
    client: FlaskClient, make_event: Any, shared_ledger: Ledger
) -> None:
    sessions = [{"starts_at": "2037-12-01T18:00:00+01:00"}, {"starts_at": "2037-12-08T18:00:00+01:00"}]
    event = make_event(permanent=True, sessions=sessions, timezone="Europe/Warsaw")
    rid = _paid_registration(client, event)
    token = _issue(shared_ledger, rid, event["id"])

    r = client.get(f"/v1/join/{token}")
    assert r.status_code == 200, r.get_json()
    assert r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    assert body["valid"] is True and body["event_id"] == event["id"]
    assert body["permanent"] is True and body["timezone"] == "Europe/Warsaw"
    assert [s["starts_at"] for s in body["sessions"]] == [
        "2037-12-01T17:00:00+00:00", "2037-12-08T17:00:00+00:00"]


def test_unknown_and_malformed_tokens_are_404_problems(client: FlaskClient) -> None:
    for token in ("x" * 43, "not-a-token", access_tokens.derive_token(b"\0" * 32, "nobody")):
        r = client.get(f"/v1/join/{token}")
        assert r.status_code == 404
        assert r.mimetype == "application/problem+json"
        assert r.get_json()["code"] == "not_found"


def test_rejection_and_cancellation_close_access_at_once(
    client: FlaskClient, make_event: Any, shared_ledger: Ledger
) -> None:
    event = make_event()
    rejected = _paid_registration(client, event)
    kept = _paid_registration(client, event)
    rejected_token = _issue(shared_ledger, rejected, event["id"])
    kept_token = _issue(shared_ledger, kept, event["id"])
    headers = event["_org"].headers

    r = client.post(f"/v1/registrations/{rejected}/reject", json={"reason": "duplicate"}, headers=headers)
    assert r.status_code == 200, r.get_json()
    assert client.get(f"/v1/join/{rejected_token}").status_code == 404  # before any worker ran
    assert client.get(f"/v1/join/{kept_token}").status_code == 200

    r = client.post(f"/v1/events/{event['id']}/cancel", json={"reason": "ill"}, headers=headers)
    assert r.status_code == 200, r.get_json()
    assert client.get(f"/v1/join/{kept_token}").status_code == 404


def test_a_revoked_row_is_404_even_while_the_registration_is_open(
    client: FlaskClient, make_event: Any, shared_ledger: Ledger, tokens: Any
) -> None:
    event = make_event()
    rid = _paid_registration(client, event)
    token = _issue(shared_ledger, rid, event["id"])
    with shared_ledger.db.transaction() as conn:
        access_tokens.revoke_registration(conn, rid, reason="test", at=datetime.now(UTC))
    assert client.get(f"/v1/join/{token}").status_code == 404
    # The public endpoint needs no credentials, and credentials change nothing.
    assert client.get(f"/v1/join/{token}", headers=bearer(tokens.admin)).status_code == 404


def test_the_join_link_in_the_email_opens_a_page(
    client: FlaskClient, make_event: Any, shared_ledger: Ledger
) -> None:
    """API.md: the Join link is {LEDGER_PUBLIC_URL}/join/{token}: a page, in the
    event's time zone, agreeing with GET /v1/join/{token}."""
    event = make_event(permanent=True, timezone="Europe/Warsaw",
                       sessions=[{"starts_at": "2037-12-01T18:00:00+01:00"}, {"starts_at": "2037-12-08T18:00:00+01:00"}])
    rid = _paid_registration(client, event)
    token = _issue(shared_ledger, rid, event["id"])
    page = client.get(f"/join/{token}")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "Your access is valid" in html and "every session" in html
    assert "18:00" in html and "1 Dec 2037" in html and "8 Dec 2037" in html
    assert page.headers["Cache-Control"] == "no-store"
    polish = client.get(f"/join/{token}", headers={"Accept-Language": "pl-PL,pl;q=0.9"}).get_data(as_text=True)
    assert "Twój dostęp jest ważny" in polish and "wt. 1 gru 2037, 18:00" in polish  # the browser's language
    assert '<html lang="pl">' in polish and "/app/language/" not in polish  # the token stays out of other URLs
    client.post(f"/v1/registrations/{rid}/reject", json={"reason": "test"}, headers=event["_org"].headers)
    with shared_ledger.db.transaction() as conn:
        access_tokens.revoke_registration(conn, rid, reason="rejected", at=datetime.now(UTC))
    gone = client.get(f"/join/{token}")
    assert gone.status_code == 404 and "Link not valid" in gone.get_data(as_text=True)
    assert client.get("/join/nonsense").status_code == 404
