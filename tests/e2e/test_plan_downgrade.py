"""Issue 13 item 9: a plan change limits every later sale at once (R9, R20).

The first release: plan of 5, five seats held, plan changed to 3, then five
payments -- all five sold against a capacity of 3, because a held seat was
sold whatever the plan said.  Now the first three payments get seats and the
other two are recorded and owed back (``refund_due``, R17).
"""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.support.api_client import Tokens, bearer


def test_five_held_seats_then_a_plan_of_three_sell_three(client: FlaskClient, tokens: Tokens, make_org: Any,
                                                        make_event: Any) -> None:
    org = make_org(plan_size=5)
    event = make_event(org)
    rids = []
    for i in range(5):
        r = client.post(f"/v1/events/{event['id']}/registrations", json={"name": f"P{i}", "email": f"p{i}@example.com"})
        assert r.status_code == 201, r.get_json()
        rids.append(r.get_json()["id"])
    seats = client.get(f"/v1/events/{event['id']}", headers=org.headers).get_json()
    assert (seats["tickets_sold"], seats["tickets_held"], seats["tickets_left"]) == (0, 5, 0)

    r = client.post(f"/v1/organizers/{org.id}/plan", json={"plan_size": 3}, headers=bearer(tokens.admin))
    assert r.status_code == 200 and r.get_json()["plan_size"] == 3

    statuses = []
    for i, rid in enumerate(rids):
        r = client.post(f"/v1/registrations/{rid}/payments", headers=org.headers, json={
            "amount": {"amount": "49.00", "currency": "USD"}, "provider": "manual", "reference": f"bank-{i}"})
        assert r.status_code == 200, r.get_json()
        statuses.append((r.get_json()["status"], r.get_json()["refund_due"]["amount"]))
    assert statuses == [("paid", "0.00")] * 3 + [("refund_due", "49.00")] * 2

    now = client.get(f"/v1/events/{event['id']}", headers=org.headers).get_json()
    assert (now["capacity"], now["tickets_sold"], now["tickets_held"], now["tickets_left"]) == (3, 3, 0, 0)
