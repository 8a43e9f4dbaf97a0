"""Issue 12 through HTTP: money owed back (R17), the fee base (R18), partial
refunds (R19) and the manual payment's provider (item 7) -- the event's
``money``, the fee report's ``refund_due``, the participants CSV's total line
and ``ledger report fees``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator

from api.app import create_app
from entrypoints.bootstrap import bootstrap
from entrypoints.cli_views import fees_command
from ledger import access_tokens, event_log
from ledger.container import Ledger
from projections.runner import ProjectionRunner
from tests.support.api_client import Tokens, bearer
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def usd(amount: str) -> dict[str, str]:
    return {"amount": amount, "currency": "USD"}


def register(client: FlaskClient, event: dict[str, Any], n: int = 0) -> str:
    r = client.post(f"/v1/events/{event['id']}/registrations", json={"name": f"P{n}", "email": f"p{n}@x.org"})
    assert r.status_code == 201, r.get_json()
    rid: str = r.get_json()["id"]
    return rid


def pay(client: FlaskClient, event: dict[str, Any], rid: str, ref: str, amount: str = "49.00", **extra: Any) -> Any:
    return client.post(f"/v1/registrations/{rid}/payments", headers=event["_org"].headers,
                       json={"amount": usd(amount), "reference": ref, **extra})


def refund(client: FlaskClient, event: dict[str, Any], rid: str, ref: str, amount: str, **extra: Any) -> Any:
    return client.post(f"/v1/registrations/{rid}/refunds", headers=event["_org"].headers,
                       json={"amount": usd(amount), "reference": ref, **extra})


def money_of(client: FlaskClient, event: dict[str, Any]) -> dict[str, str]:
    body = client.get(f"/v1/events/{event['id']}", headers=event["_org"].headers).get_json()
    return {k: v["amount"] for k, v in body["money"].items()}


def fee_line(client: FlaskClient, event: dict[str, Any]) -> dict[str, Any]:
    body = client.get("/v1/reports/fees?currency=USD", headers=event["_org"].headers).get_json()
    (item,) = body["items"]
    (total,) = body["totals"]
    assert all(total[k] == item[k] for k in ("gross", "refunds", "refund_due", "net", "fee"))
    return dict(item)


def test_item1_a_second_real_payment_is_recorded_and_owed_back(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    rid = register(client, event)
    assert pay(client, event, rid, "bank-1").status_code == 200
    r = pay(client, event, rid, "bank-2")  # the first release: 422 amount_mismatch "0.00 USD is due"
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["status"] == "paid"  # the ticket stays
    assert (body["paid"], body["refund_due"], body["ticket_money"], body["fee"]) == (
        usd("98.00"), usd("49.00"), usd("49.00"), usd("2.45"))
    assert [p["fee"]["amount"] for p in body["payments"]] == ["2.45", "0.00"]  # R18: no fee on money owed back
    # Refunding the double payment is taken from what is owed back: the ticket stays.
    r = refund(client, event, rid, "re-double", "49.00")
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["status"], r.get_json()["refund_due"], r.get_json()["fee"]) == (
        "paid", usd("0.00"), usd("2.45"))
    assert r.get_json()["refunds"] == [{"amount": usd("49.00"), "reference": "re-double", "ends_access": False}]


def test_item7_provider_is_a_connection_kind_and_method_is_free_text(
    client: FlaskClient, make_event: Any, shared_ledger: Ledger
) -> None:
    event = make_event()
    rid = register(client, event)
    r = pay(client, event, rid, "wire-1", provider="wire")  # the first release recorded and published it
    assert (r.status_code, r.get_json()["code"]) == (422, "validation_failed")
    assert "provider" in r.get_json()["errors"]
    r = pay(client, event, rid, "wire-1", provider="manual", method="bank transfer")
    assert r.status_code == 200, r.get_json()
    (payment,) = r.get_json()["payments"]
    assert (payment["provider"], payment["method"], payment["fee_policy"]) == ("manual", "bank transfer", "fee-v2")
    items = event_log.read_aggregate(shared_ledger.store, rid, after=0, limit=100)
    (recorded,) = [i for i in items if i.type == "PaymentRecorded"]
    schema = json.loads((SCHEMAS / "PaymentRecorded.json").read_text())
    Draft202012Validator(schema).validate(json.loads(json.dumps(recorded.as_dict())))  # the Kafka message's shape
    assert recorded.data["method"] == "bank transfer" and recorded.schema_version == 2


def _token(ledger: Ledger, rid: str, event_id: str) -> str:
    """Issued the way the notify worker issues it (tests/integration/notify cover the worker)."""
    with ledger.db.transaction() as conn:
        return access_tokens.issue(conn, secret_key=ledger.settings.secret_key, registration_id=rid,
                                   event_id=event_id, at=datetime.now(UTC))


def test_item4_a_goodwill_refund_keeps_the_ticket_status_and_join_link(
    client: FlaskClient, make_event: Any, shared_ledger: Ledger
) -> None:
    event = make_event()
    rid = register(client, event)
    assert pay(client, event, rid, "bank-1").status_code == 200
    assert client.post(f"/v1/registrations/{rid}/confirm", headers=event["_org"].headers).status_code == 200
    token = _token(shared_ledger, rid, event["id"])

    r = refund(client, event, rid, "goodwill", "10.00")
    assert r.status_code == 201, r.get_json()
    body = r.get_json()  # the first release: refund_due 39.00, token revoked
    assert (body["status"], body["refund_due"], body["refunded"], body["fee"]) == (
        "confirmed", usd("0.00"), usd("10.00"), usd("1.95"))
    assert client.get(f"/v1/join/{token}").status_code == 200
    assert client.get(f"/v1/events/{event['id']}", headers=event["_org"].headers).get_json()["tickets_sold"] == 1

    r = refund(client, event, rid, "the-rest", "39.00")  # everything paid is refunded: access ends by default
    assert (r.get_json()["status"], r.get_json()["refunds"][-1]["ends_access"]) == ("refunded", True)
    assert client.get(f"/v1/join/{token}").status_code == 404
    assert client.get(f"/v1/events/{event['id']}", headers=event["_org"].headers).get_json()["tickets_sold"] == 0


def test_item4_the_organizer_says_whether_a_refund_ends_access(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    ends, keeps = register(client, event, 1), register(client, event, 2)
    for rid in (ends, keeps):
        assert pay(client, event, rid, f"bank-{rid}").status_code == 200
    r = refund(client, event, ends, "part-ends", "10.00", ends_access=True)
    assert (r.get_json()["status"], r.get_json()["refund_due"], r.get_json()["fee"]) == (
        "refund_due", usd("39.00"), usd("0.00"))
    r = refund(client, event, keeps, "all-keeps", "49.00", ends_access=False)
    assert (r.get_json()["status"], r.get_json()["refund_due"], r.get_json()["ticket_money"]) == (
        "paid", usd("0.00"), usd("0.00"))
    r = refund(client, event, keeps, "more", "0.01", ends_access="maybe")
    assert (r.status_code, r.get_json()["code"]) == (422, "validation_failed")


def test_items2_3_a_cancelled_event_shows_what_is_owed_back_and_charges_no_fee(
    client: FlaskClient, make_event: Any, shared_ledger: Ledger, tokens: Tokens, tmp_path: Path,
) -> None:
    event = make_event()
    h = event["_org"].headers
    first, second, late = (register(client, event, n) for n in range(3))
    for rid in (first, second):
        assert pay(client, event, rid, f"bank-{rid}").status_code == 200
    ProjectionRunner(shared_ledger).catch_up()
    assert money_of(client, event) == {"gross": "98.00", "refunded": "0.00", "refund_due": "0.00",
                                       "fee": "4.90", "net": "98.00", "withdrawn": "0.00"}
    assert client.post(f"/v1/events/{event['id']}/cancel", json={"reason": "speaker ill"}, headers=h).status_code == 200
    ProjectionRunner(shared_ledger).catch_up()
    # The first release: gross 98.00, refunds 0.00, net 98.00, fee 4.90 and nothing said 98.00 was owed.
    assert money_of(client, event) == {"gross": "98.00", "refunded": "0.00", "refund_due": "98.00",
                                       "fee": "0.00", "net": "98.00", "withdrawn": "0.00"}
    line = fee_line(client, event)
    assert {k: line[k] for k in ("tickets", "gross", "refunds", "refund_due", "net", "fee", "fee_policy")} == {
        "tickets": 2, "gross": "98.00", "refunds": "0.00", "refund_due": "98.00", "net": "98.00", "fee": "0.00",
        "fee_policy": "fee-v2"}

    r = pay(client, event, late, "late-1")  # money after the cancel: recorded, owed back, no fee
    assert r.status_code == 200 and r.get_json()["status"] == "refund_due" and r.get_json()["fee"] == usd("0.00")
    assert refund(client, event, first, "re-first", "49.00").status_code == 201
    ProjectionRunner(shared_ledger).catch_up()
    assert money_of(client, event) == {"gross": "147.00", "refunded": "49.00", "refund_due": "98.00",
                                       "fee": "0.00", "net": "98.00", "withdrawn": "0.00"}
    line = fee_line(client, event)
    assert (line["gross"], line["refunds"], line["refund_due"], line["fee"]) == ("147.00", "49.00", "98.00", "0.00")

    r = client.get(f"/v1/reports/fees?currency=USD&organizer={event['_org'].id}",
                   headers={**bearer(tokens.finance), "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    assert [(x["kind"], x["refund_due"], x["fee"], x["fee_policy"]) for x in rows] == [
        ("item", "98.00", "0.00", "fee-v2"), ("total", "98.00", "0.00", "")]

    r = client.get(f"/v1/events/{event['id']}/participants", headers={**h, "Accept": "text/csv"})
    lines = list(csv.DictReader(io.StringIO(r.get_data(as_text=True))))
    *people, total = lines
    assert len(people) == 3 and total["registration_id"] == "total" and total["name"] == "3 participants"
    assert (total["paid"], total["refunded"], total["refund_due"], total["fee"]) == (
        "147.00", "49.00", "98.00", "0.00")

    env = {"LEDGER_DATABASE_URL": shared_ledger.database_url, "LEDGER_DATA_DIR": str(tmp_path),
           "LEDGER_SECRET_KEY": "11" * 32}
    out = CliRunner().invoke(fees_command, ["--organizer", event["_org"].id, "--csv"], env=env)
    assert out.exit_code == 0, out.output
    (cli_line, cli_total) = csv.DictReader(io.StringIO(out.output))
    assert (cli_line["refund_due"], cli_total["refund_due"]) == ("98.00", "98.00")
    out = CliRunner().invoke(fees_command, ["--organizer", event["_org"].id], env={**env, "COLUMNS": "200"})
    assert out.exit_code == 0 and "refund due" in out.output and "98.00" in out.output


@pytest.fixture
def late_clock_client(pg_server: TestServer, tmp_path: Path) -> Iterator[tuple[FlaskClient, Ledger, list[datetime]]]:
    """An app whose clock the test moves, so that a checkout's seat hold lapses."""
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    ledger = bootstrap(make_settings(tmp_path), url=pg_server.new_database(), clock=lambda: now[0])
    with create_app(ledger).test_client() as client:
        yield client, ledger, now
    ledger.close()


def test_item1_3_money_that_found_no_seat_is_owed_back_with_no_fee(
    late_clock_client: tuple[FlaskClient, Ledger, list[datetime]],
) -> None:
    client, ledger, now = late_clock_client
    tokens = Tokens.issue(ledger)
    r = client.post("/v1/organizers", json={"name": "Small", "country": "US", "plan_size": 1},
                    headers=bearer(tokens.admin))
    org_id = r.get_json()["id"]
    h = bearer(tokens.organizer(org_id))
    assert client.post(f"/v1/organizers/{org_id}/providers", json={"provider": "manual"}, headers=h).status_code == 201
    r = client.post("/v1/events", headers=h, json={"title": "One seat", "starts_at": "2037-12-01T18:00:00+00:00",
                                                   "price": usd("49.00"), "provider": "manual"})
    event = {**r.get_json(), "_org": type("O", (), {"headers": h})}
    slow = register(client, event, 1)
    now[0] += timedelta(hours=1)  # the slow payer's hold lapses; someone else takes the seat
    fast = register(client, event, 2)
    assert pay(client, event, fast, "fast").get_json()["status"] == "paid"
    r = pay(client, event, slow, "slow")
    assert r.status_code == 200
    body = r.get_json()
    assert (body["status"], body["closed_reason"], body["refund_due"], body["fee"]) == (
        "refund_due", "capacity_exhausted", usd("49.00"), usd("0.00"))  # fee-v1 charged 2.45 here
    ProjectionRunner(ledger).catch_up()
    assert money_of(client, event) == {"gross": "98.00", "refunded": "0.00", "refund_due": "49.00",
                                       "fee": "2.45", "net": "98.00", "withdrawn": "0.00"}
    line = fee_line(client, event)
    assert (line["tickets"], line["payments"], line["refund_due"], line["fee"]) == (1, 2, "49.00", "2.45")
