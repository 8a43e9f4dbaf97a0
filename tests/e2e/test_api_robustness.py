"""Bad input writes nothing; concurrent duplicates execute once; the CLI issues
tokens that the API accepts."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from api.app import create_app
from ledger import api_tokens, event_log
from ledger.container import Ledger
from tests.support.api_client import bearer

ROOT = Path(__file__).resolve().parents[2]


def test_refused_commands_record_nothing(fresh_ledger: Ledger) -> None:
    app = create_app(fresh_ledger)
    client = app.test_client()
    admin = bearer(api_tokens.create_token(fresh_ledger.db, role="admin"))
    org = client.post("/v1/organizers", json={"name": "O", "country": "US", "plan_size": 1}, headers=admin).get_json()
    client.post(f"/v1/organizers/{org['id']}/providers", json={"provider": "manual"}, headers=admin)
    event = client.post(f"/v1/events?organizer={org['id']}", headers=admin, json={
        "title": "T", "starts_at": "2037-12-01T10:00:00+00:00", "price": {"amount": "5.00", "currency": "USD"},
        "provider": "manual"}).get_json()
    reg = client.post(f"/v1/events/{event['id']}/registrations", json={"name": "A", "email": "a@b.co"}).get_json()
    head = event_log.head(fresh_ledger.store)
    bad: list[tuple[str, dict[str, Any]]] = [
        (f"/v1/events/{event['id']}/registrations", {"name": "B", "email": "b@b.co"}),  # capacity
        (f"/v1/registrations/{reg['id']}/payments", {"amount": {"amount": "4.00", "currency": "EUR"}, "reference": "r"}),
        (f"/v1/registrations/{reg['id']}/payments", {"amount": {"amount": "4.00", "currency": "USD"}, "reference": "r",
                                                     "provider": "wire"}),
        (f"/v1/registrations/{reg['id']}/payments", {"amount": {"amount": 5, "currency": "USD"}, "reference": "r"}),
        (f"/v1/registrations/{reg['id']}/refunds", {"amount": {"amount": "1.00", "currency": "USD"}, "reference": "r"}),
        (f"/v1/registrations/{reg['id']}/resend-confirmation", {}),
        (f"/v1/events/{event['id']}/reschedule", {"starts_at": "tomorrow"}),
        ("/v1/events", {"title": "T", "starts_at": "2037-12-01T10:00:00+00:00",
                        "price": {"amount": "5.00", "currency": "XXX"}, "provider": "manual"}),
    ]
    for path, body in bad:
        r = client.post(path, json=body, headers=admin)
        assert 400 <= r.status_code < 500, (path, r.status_code)
    assert event_log.head(fresh_ledger.store) == head


def test_concurrent_duplicates_with_one_key_execute_once(app: Any, make_event: Any) -> None:
    event = make_event()
    headers = {"Idempotency-Key": "same-key-burst"}

    def post(_: int) -> tuple[int, str | None, bytes]:
        with app.test_client() as c:
            r = c.post(f"/v1/events/{event['id']}/registrations", json={"name": "A", "email": "a@b.co"},
                       headers=headers)
            return r.status_code, r.headers.get("Idempotent-Replayed"), r.data

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(post, range(6)))
    created = [r for r in results if r[0] == 201]
    assert all(code in (201, 409) for code, _, _ in results)
    assert len({body for code, _, body in created}) == 1
    with app.test_client() as c:
        e = c.get(f"/v1/events/{event['id']}", headers=event["_org"].headers).get_json()
    assert e["tickets_left"] == 49


def test_cli_token_create_prints_a_token_the_api_accepts(fresh_ledger: Ledger, tmp_path: Path) -> None:
    env = {**os.environ, "LEDGER_DATABASE_URL": fresh_ledger.database_url, "LEDGER_DATA_DIR": str(tmp_path),
           "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "entrypoints.cli", "token", "create", "--role", "finance"],
                         env=env, capture_output=True, text=True, check=True).stdout
    token = out.strip()
    assert out.count("\n") == 1 and token.startswith("ldg_")
    client = create_app(fresh_ledger).test_client()
    assert client.get("/v1/organizers/00000000-0000-0000-0000-000000000000",
                      headers=bearer(token)).status_code == 404  # authenticated, unknown id
    bad = subprocess.run([sys.executable, "-m", "entrypoints.cli", "token", "create", "--role", "organizer",
                          "--organizer", "nope"], env=env, capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stdout == "" and "no organizer" in bad.stderr  # a domain error


def test_every_event_records_its_actor(fresh_ledger: Ledger) -> None:
    """Auditors see who caused each event: the token (by id), the public, a worker."""
    import hashlib

    app = create_app(fresh_ledger)
    client = app.test_client()
    admin_token = api_tokens.create_token(fresh_ledger.db, role="admin")
    admin_id = hashlib.sha256(admin_token.encode()).hexdigest()[:12]
    org = client.post("/v1/organizers", json={"name": "O", "country": "US", "plan_size": 3},
                      headers=bearer(admin_token)).get_json()
    org_token = api_tokens.create_token(fresh_ledger.db, role="organizer", organizer_id=org["id"])
    org_id = hashlib.sha256(org_token.encode()).hexdigest()[:12]
    client.post(f"/v1/organizers/{org['id']}/providers", json={"provider": "manual"}, headers=bearer(org_token))
    event = client.post("/v1/events", headers=bearer(org_token), json={
        "title": "T", "starts_at": "2037-12-01T10:00:00+00:00", "price": {"amount": "5.00", "currency": "USD"},
        "provider": "manual"}).get_json()
    client.post(f"/v1/events/{event['id']}/registrations", json={"name": "A", "email": "a@b.co"})
    items = event_log.read(fresh_ledger.store, after=0, limit=20)
    actors = [(i.type, i.actor) for i in items]
    assert actors == [
        ("OrganizerRegistered", f"admin:{admin_id}"),
        ("ProviderConnected", f"organizer:{org_id}"),
        ("PaidEventCreated", f"organizer:{org_id}"),
        ("SeatHeld", "public"),
        ("ParticipantRegistered", "public"),
    ]
    assert all("actor" not in i.data and i.as_dict()["actor"] == i.actor for i in items)
