"""``POST /v1/erasures`` (R24) through HTTP on real PostgreSQL: who may erase
whom, the receipt, idempotency, bad input, and what every read shows after."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

from flask.testing import FlaskClient

from ledger.container import Ledger
from projections.runner import ProjectionRunner
from tests.support.api_client import Tokens, bearer


def register(client: FlaskClient, event: dict[str, Any], name: str, email: str, *, pay: bool = True) -> str:
    r = client.post(f"/v1/events/{event['id']}/registrations",
                    json={"name": name, "email": email, "fields": {"company": "Acme"}})
    assert r.status_code == 201, r.get_json()
    rid: str = r.get_json()["id"]
    if pay:
        r = client.post(f"/v1/registrations/{rid}/payments", headers=event["_org"].headers,
                        json={"amount": event["price"], "provider": "manual", "reference": f"bank-{rid[:8]}"})
        assert r.status_code == 200, r.get_json()
    return rid


def erase(client: FlaskClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post("/v1/erasures", json=body, headers=headers)


def test_organizer_erases_its_participant_and_every_read_shows_erased(
    client: FlaskClient, make_event: Any, shared_ledger: Ledger, tokens: Tokens,
) -> None:
    event = make_event(price="20.00", currency="EUR")
    org = event["_org"]
    gone = register(client, event, "Erin Erased", "erin@example.org")
    kept = register(client, event, "Kim Kept", "kim@example.org")
    before = client.get(f"/v1/registrations/{gone}", headers=org.headers).get_json()
    assert before["name"] == "Erin Erased" and before["erased"] is False

    r = erase(client, org.headers, registration_id=gone)
    assert r.status_code == 201, r.get_json()
    receipt = r.get_json()
    assert receipt["id"] and receipt["erased_at"]
    assert receipt["erased"] == ["name", "email", "fields", "email_failures.reason"]
    [item] = receipt["registrations"]
    assert item["registration_id"] == gone and item["already_erased"] is False
    assert isinstance(item["position"], int) and item["event_id"]
    assert "Erin" not in r.get_data(as_text=True)

    after = client.get(f"/v1/registrations/{gone}", headers=org.headers).get_json()
    assert (after["name"], after["email"], after["fields"], after["erased"]) == (None, None, None, True)
    for money in ("price", "paid", "refunded", "refund_due", "fee", "ticket_money"):
        assert after[money] == before[money]
    assert after["status"] == before["status"] == "paid"
    other = client.get(f"/v1/registrations/{kept}", headers=org.headers).get_json()
    assert other["name"] == "Kim Kept" and other["erased"] is False

    # The finance event log: the erasure event (no personal data) at the receipt's
    # position, and the registration's earlier events read as erased.
    finance = bearer(tokens.finance)
    r = client.get(f"/v1/ledger/events?after={item['position'] - 1}&limit=1", headers=finance)
    [logged] = r.get_json()["items"]
    assert logged["type"] == "PersonalDataErased" and logged["aggregate_id"] == gone
    assert logged["id"] == item["event_id"] and logged["schema_version"] == 1
    assert set(logged["data"]) == {"erasure_id", "erased_fields"}
    registered = _registered_item(client, finance, gone, item["position"])
    assert registered["data"]["name"] is None and registered["data"]["email"] is None
    assert registered["data"]["fields"] is None and registered["data"]["erased"] is True
    assert registered["data"]["price_minor"] == 2000
    assert _registered_item(client, finance, kept, item["position"])["data"]["name"] == "Kim Kept"

    # The views (JSON and CSV).
    ProjectionRunner(shared_ledger).catch_up()
    items = {i["registration_id"]: i for i in client.get(
        f"/v1/events/{event['id']}/participants", headers=org.headers).get_json()["items"]}
    assert (items[gone]["name"], items[gone]["email"], items[gone]["erased"]) == (None, None, True)
    assert items[gone]["paid"] == {"amount": "20.00", "currency": "EUR"} and items[gone]["status"] == "paid"
    assert items[kept]["name"] == "Kim Kept" and items[kept]["erased"] is False
    text = client.get(f"/v1/events/{event['id']}/participants",
                      headers={**org.headers, "Accept": "text/csv"}).get_data(as_text=True)
    assert "Erin" not in text and "erin@example.org" not in text
    rows = {row["registration_id"]: row for row in csv.DictReader(io.StringIO(text))}
    assert (rows[gone]["name"], rows[gone]["email"], rows[gone]["erased"]) == ("", "", "true")
    assert rows[gone]["paid"] == "20.00" and rows["total"]["paid"] == "40.00"


def _history(client: FlaskClient, headers: dict[str, str], rid: str, near: int) -> list[dict[str, Any]]:
    """The registration's items in the finance log, looked for among the 100
    events before position ``near`` (the test made them just before)."""
    r = client.get(f"/v1/ledger/events?after={max(near - 100, 0)}&limit=200", headers=headers)
    assert r.status_code == 200, r.get_json()
    return [i for i in r.get_json()["items"] if i["aggregate_id"] == rid]


def _registered_item(client: FlaskClient, headers: dict[str, str], rid: str, near: int) -> dict[str, Any]:
    found = [i for i in _history(client, headers, rid, near) if i["type"] == "ParticipantRegistered"]
    assert len(found) == 1
    return found[0]


def test_another_organizers_registration_is_not_found(client: FlaskClient, make_event: Any, make_org: Any) -> None:
    event = make_event()
    rid = register(client, event, "Olga Other", "olga@example.org")
    stranger = make_org()
    r = erase(client, stranger.headers, registration_id=rid)
    unknown = erase(client, stranger.headers, registration_id="00000000-0000-0000-0000-000000000000")
    assert r.status_code == unknown.status_code == 404
    assert r.mimetype == "application/problem+json" and r.get_json()["code"] == unknown.get_json()["code"]
    assert r.get_json()["code"] == "not_found"
    # By e-mail, another organizer's participants are simply not there.
    assert erase(client, stranger.headers, email="olga@example.org").status_code == 404
    still = client.get(f"/v1/registrations/{rid}", headers=event["_org"].headers).get_json()
    assert still["name"] == "Olga Other" and still["erased"] is False


def test_admin_erases_anyone_finance_may_not(
    client: FlaskClient, make_event: Any, tokens: Tokens, shared_ledger: Ledger,
) -> None:
    event = make_event()
    rid = register(client, event, "Ada Admin", "ada@example.org")
    r = erase(client, bearer(tokens.finance), registration_id=rid)
    assert r.status_code == 403 and r.mimetype == "application/problem+json"
    assert erase(client, {}, registration_id=rid).status_code == 401
    r = erase(client, bearer(tokens.admin), registration_id=rid)
    assert r.status_code == 201, r.get_json()
    assert client.get(f"/v1/registrations/{rid}", headers=event["_org"].headers).get_json()["erased"] is True


def test_by_email_erases_every_registration_with_it(client: FlaskClient, make_event: Any,
                                                     shared_ledger: Ledger) -> None:
    first = make_event()
    org = first["_org"]
    second = make_event(org=org)
    a = register(client, first, "Sam Same", "Sam.Same@example.org")
    b = register(client, second, "Sam Same", "sam.same@example.org", pay=False)
    other = register(client, second, "Nora Not", "nora@example.org")
    ProjectionRunner(shared_ledger).catch_up()
    r = erase(client, org.headers, email="SAM.SAME@example.org")
    assert r.status_code == 201, r.get_json()
    assert sorted(i["registration_id"] for i in r.get_json()["registrations"]) == sorted([a, b])
    for rid in (a, b):
        assert client.get(f"/v1/registrations/{rid}", headers=org.headers).get_json()["email"] is None
    assert client.get(f"/v1/registrations/{other}", headers=org.headers).get_json()["name"] == "Nora Not"


def test_by_email_finds_a_registration_the_views_have_not_seen_yet(client: FlaskClient, make_event: Any,
                                                                   make_org: Any) -> None:
    """The who-paid view follows the log a moment behind: an erasure by
    address right after a registration (no projection run here) must still
    cover it, and still only the caller's own participants."""
    event = make_event()
    org = event["_org"]
    rid = register(client, event, "Quick Quinn", "Quick.Quinn@example.org")
    assert erase(client, make_org().headers, email="quick.quinn@example.org").status_code == 404
    r = erase(client, org.headers, email="QUICK.QUINN@example.org")
    assert r.status_code == 201, r.get_json()
    assert [i["registration_id"] for i in r.get_json()["registrations"]] == [rid]
    assert client.get(f"/v1/registrations/{rid}", headers=org.headers).get_json()["erased"] is True


def test_erasing_twice_records_once_and_a_key_replays(client: FlaskClient, make_event: Any,
                                                      tokens: Tokens) -> None:
    event = make_event()
    org = event["_org"]
    rid = register(client, event, "Tom Twice", "tom@example.org", pay=False)
    paid_with = {**org.headers, "Idempotency-Key": f"pay-{rid}"}  # its answer is stored, with the name
    r = client.post(f"/v1/registrations/{rid}/payments", headers=paid_with,
                    json={"amount": event["price"], "provider": "manual", "reference": "keyed-1"})
    assert r.status_code == 200 and r.get_json()["name"] == "Tom Twice"
    keyed = {**org.headers, "Idempotency-Key": f"erase-{rid}"}
    first = erase(client, keyed, registration_id=rid)
    assert first.status_code == 201, first.get_json()
    replay = erase(client, keyed, registration_id=rid)
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_data() == first.get_data()
    again = erase(client, org.headers, registration_id=rid)
    assert again.status_code == 201, again.get_json()
    [item] = again.get_json()["registrations"]
    [original] = first.get_json()["registrations"]
    assert item["already_erased"] is True
    assert (item["event_id"], item["position"]) == (original["event_id"], original["position"])
    assert first.get_json()["purged"]["idempotency_keys"] == 1  # the keyed payment's stored answer
    replayed = client.post(f"/v1/registrations/{rid}/payments", headers=paid_with,
                           json={"amount": event["price"], "provider": "manual", "reference": "keyed-1"})
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    answer = replayed.get_json()
    assert (answer["name"], answer["email"], answer["fields"], answer["erased"]) == (None, None, None, True)
    assert answer["paid"] == event["price"] and "tom@example.org" not in replayed.get_data(as_text=True)
    history = _history(client, bearer(tokens.finance), rid, item["position"] + 10)
    assert [i["type"] for i in history].count("PersonalDataErased") == 1


def test_bad_input_is_a_problem_never_a_500(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    headers = event["_org"].headers
    for body in ({}, {"registration_id": "x", "email": "a@b.c"}, {"registration_id": 5}, {"email": ""},
                 {"nickname": "x"}, {"registration_id": "r" * 100}):
        r = client.post("/v1/erasures", json=body, headers=headers)
        assert r.status_code == 422, (body, r.get_json())
        assert r.mimetype == "application/problem+json" and r.get_json()["code"]
    r = client.post("/v1/erasures", data=b"{not json", headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 400 and r.mimetype == "application/problem+json"
    r = erase(client, headers, registration_id="not-a-uuid")
    assert r.status_code == 404 and r.get_json()["code"] == "not_found"
    r = erase(client, headers, email="nobody@example.org")
    assert r.status_code == 404 and r.get_json()["code"] == "not_found"


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_pages_show_the_participant_as_erased(client: FlaskClient, make_event: Any,
                                              shared_ledger: Ledger) -> None:
    event = make_event()
    org = event["_org"]
    rid = register(client, event, "Paula Page", "paula@example.org")
    assert erase(client, org.headers, registration_id=rid).status_code == 201
    ProjectionRunner(shared_ledger).catch_up()
    form = client.get("/app/login").get_data(as_text=True)
    r = client.post("/app/login", data={"csrf_token": _csrf(form), "token": org.token})
    assert r.status_code in (200, 302, 303), r.get_data(as_text=True)[:500]
    for url in (f"/app/registrations/{rid}", f"/app/events/{event['id']}",
                f"/app/events/{event['id']}/participants.csv"):
        page = client.get(url)
        assert page.status_code == 200, url
        text = page.get_data(as_text=True)
        assert "Paula" not in text and "paula@example.org" not in text, url
        assert "None" not in text.replace("NoneType", ""), url
    assert "(erased)" in client.get(f"/app/registrations/{rid}").get_data(as_text=True)


def test_an_erased_address_may_register_again_for_the_same_event(client: FlaskClient, make_event: Any) -> None:
    """R24 with one registration per address and event: the erasure deletes the
    keyed digest of the address, so the person is a stranger again, not the
    erased registration answered back."""
    event = make_event(price="20.00", currency="EUR")
    first = register(client, event, "Erin Erased", "erin.again@example.org", pay=False)
    same = client.post(f"/v1/events/{event['id']}/registrations",
                       json={"name": "Erin", "email": "Erin.Again@example.org"})
    assert same.status_code == 200 and same.get_json()["id"] == first  # the one per address

    assert erase(client, event["_org"].headers, registration_id=first).status_code == 201
    again = client.post(f"/v1/events/{event['id']}/registrations",
                        json={"name": "Erin", "email": "erin.again@example.org"})
    assert again.status_code == 201, again.get_json()
    assert again.get_json()["id"] != first
