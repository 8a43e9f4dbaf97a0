"""``GET /v1/ledger/events`` — the finance event log through HTTP."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger import event_log
from ledger.container import Ledger
from tests.e2e.test_participants_api import register_and_pay
from tests.support.api_client import Tokens, bearer


def test_finance_reads_the_log_in_global_order(
    client: FlaskClient, tokens: Tokens, make_event: Any, shared_ledger: Ledger
) -> None:
    start = event_log.head(shared_ledger.store)
    event = make_event(price="20.00")
    register_and_pay(client, event, 1)
    r = client.get(f"/v1/ledger/events?after={start}&limit=500", headers=bearer(tokens.finance))
    assert r.status_code == 200
    body = r.get_json()
    positions = [i["position"] for i in body["items"]]
    assert positions == sorted(positions) and positions[0] > start
    payment = next(i for i in body["items"] if i["type"] == "PaymentRecorded")
    assert {"position", "id", "type", "aggregate_id", "aggregate_version", "occurred_at", "data",
            "organizer_id", "schema_version"} <= set(payment)
    assert payment["organizer_id"] == event["_org"].id
    assert payment["data"]["amount_minor"] == 2000 and payment["data"]["fee_minor"] == 100
    connected = [i for i in body["items"] if i["type"] == "ProviderConnected"]
    assert connected and all("secret" not in str(i["data"]).lower() for i in connected)

    first = client.get(f"/v1/ledger/events?after={start}&limit=2", headers=bearer(tokens.finance)).get_json()
    assert len(first["items"]) == 2 and first["next"] == str(first["items"][-1]["position"])
    following = client.get(f"/v1/ledger/events?after={first['next']}&limit=2",
                           headers=bearer(tokens.finance)).get_json()
    assert following["items"][0]["position"] == positions[2]


def test_only_finance_reads_the_log(client: FlaskClient, make_org: Any) -> None:
    org = make_org()
    r = client.get("/v1/ledger/events", headers=org.headers)
    assert (r.status_code, r.get_json()["code"]) == (403, "forbidden")
    assert client.get("/v1/ledger/events").status_code == 401


@pytest.mark.parametrize("query", ["after=-1", "after=abc", "limit=0", "limit=501", "limit=x"])
def test_bad_input_is_a_422_problem(client: FlaskClient, tokens: Tokens, query: str) -> None:
    r = client.get(f"/v1/ledger/events?{query}", headers=bearer(tokens.finance))
    assert r.status_code == 422 and r.mimetype == "application/problem+json"
    assert query.split("=")[0] in r.get_json()["errors"]


def test_ledger_log_items_name_their_actor(client, tokens, make_event) -> None:  # type: ignore[no-untyped-def]
    from tests.support.api_client import bearer

    make_event()
    items = client.get("/v1/ledger/events?limit=500", headers=bearer(tokens.finance)).get_json()["items"]
    assert items and all(isinstance(i["actor"], str) and i["actor"] for i in items)
    assert any(i["actor"].startswith("organizer:") for i in items)
