"""Disputes, reversals and failed refunds are facts (issue 18 item 2; R15, R17, R18).

Before: ``charge.dispute.*``, ``refund.failed``, ``PAYMENT.CAPTURE.REVERSED``,
``CUSTOMER.DISPUTE.*`` and PayU's CANCELED refunds were answered 200 with
nothing recorded, so money left the organizer's account while the ledger
still counted it as revenue, charged its fee and let the participant in.
Now each is an event on the registration, idempotent by the provider's id,
shown in who-paid and in the fee report, and a lost dispute or a reversal
ends access like a refund that ends it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from ledger import access_tokens
from ledger.container import Ledger
from projections.runner import ProjectionRunner
from tests.e2e import test_providers_support as kit
from tests.e2e.test_providers_support import Servers, Shop, open_shop

app = kit.app
provider_ledger = kit.provider_ledger
servers = kit.servers
tokens = kit.tokens


def _stripe(shop: Shop, servers: Servers, event_type: str, obj: dict[str, Any]) -> Any:
    headers, body = servers.stripe.signed(servers.stripe.event(event_type, obj))
    r = shop.webhook(headers, body)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["facts"]


def _paypal(shop: Shop, servers: Servers, event_type: str, resource: dict[str, Any], kind: str) -> Any:
    headers, body = servers.paypal.signed(servers.paypal.event(event_type, resource, kind))
    r = shop.webhook(headers, body)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["facts"]


def _paid_stripe(shop: Shop, servers: Servers) -> tuple[dict[str, Any], str]:
    reg = shop.registered()
    sid = shop.reference(reg["id"])
    facts = _stripe(shop, servers, "checkout.session.completed", servers.stripe.complete(sid))
    assert facts[0]["outcome"] == "payment_recorded"
    return reg, sid


def _join_token(ledger: Ledger, rid: str, event_id: str) -> str:
    with ledger.db.transaction() as conn:
        return access_tokens.issue(conn, secret_key=ledger.settings.secret_key, registration_id=rid,
                                   event_id=event_id, at=datetime.now(UTC))


def _books(client: FlaskClient, shop: Shop) -> dict[str, str]:
    """The organizer's trial balance (R22): balanced, as account -> balance."""
    r = client.get("/v1/books/trial-balance", headers=shop.org.headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["balanced"] is True and all(t["debit"] == t["credit"] for t in body["totals"])
    accounts = {"refunds_paid", "withdrawn", "ticket_revenue", "owed_back", "fee_expense", "fee_payable"}
    return {**dict.fromkeys(accounts, "0.00"), **{a["account"]: a["balance"] for a in body["accounts"]}}


def _fee_line(client: FlaskClient, shop: Shop) -> dict[str, Any]:
    r = client.get("/v1/reports/fees?period=year", headers=shop.org.headers)
    assert r.status_code == 200, r.get_json()
    totals = r.get_json()["totals"]
    assert len(totals) == 1
    line: dict[str, Any] = totals[0]
    return line


def _participant(client: FlaskClient, shop: Shop, rid: str) -> dict[str, Any]:
    r = client.get(f"/v1/events/{shop.event['id']}/participants", headers=shop.org.headers)
    assert r.status_code == 200, r.get_json()
    found: dict[str, Any] = next(p for p in r.get_json()["items"] if p["registration_id"] == rid)
    return found


def test_a_dispute_lost_after_the_ticket_was_used_ends_access_and_corrects_revenue_and_fee(
    client: FlaskClient, make_org: Any, servers: Servers, provider_ledger: Ledger
) -> None:
    shop = open_shop(client, make_org, servers, "stripe")
    reg, sid = _paid_stripe(shop, servers)
    token = _join_token(provider_ledger, reg["id"], shop.event["id"])
    assert client.get(f"/v1/join/{token}").status_code == 200  # the ticket was used
    ProjectionRunner(provider_ledger).catch_up()
    before = _fee_line(client, shop)
    assert (before["gross"], before["net"], before["fee"], before["withdrawn"]) == ("49.00", "49.00", "2.45", "0.00")

    dispute = servers.stripe.dispute(sid)
    assert _stripe(shop, servers, "charge.dispute.created", dispute)[0]["outcome"] == "disputed_recorded"
    got = shop.get(reg["id"])
    assert got["disputed"] is True and got["status"] == "paid"  # open: access kept for now
    assert client.get(f"/v1/join/{token}").status_code == 200
    facts = _stripe(shop, servers, "charge.dispute.funds_withdrawn", dispute)
    assert facts[0]["outcome"] == "funds_withdrawn_recorded"
    # Delivered again: recorded once.
    assert _stripe(shop, servers, "charge.dispute.funds_withdrawn", dispute)[0]["outcome"].startswith("duplicate")
    closed = servers.stripe.close_dispute(dispute["id"], "lost")
    assert _stripe(shop, servers, "charge.dispute.closed", closed)[0]["outcome"] == "dispute_lost_recorded"

    got = shop.get(reg["id"])
    assert got["status"] == "dispute_lost" and got["closed_reason"] == "dispute_lost"
    assert got["withdrawn"]["amount"] == "49.00" and got["refund_due"]["amount"] == "0.00"
    assert got["fee"]["amount"] == "0.00" and got["ticket_money"]["amount"] == "0.00"
    assert got["disputes"] == [{"id": dispute["id"], "status": "lost", "reason": "fraudulent",
                                "amount": {"amount": "49.00", "currency": "USD"},
                                "withdrawn": {"amount": "49.00", "currency": "USD"},
                                "reinstated": {"amount": "0.00", "currency": "USD"}}]
    # Access ended: the join token stops working, the seat is free again.
    assert client.get(f"/v1/join/{token}").status_code == 404
    assert shop.event_now()["tickets_sold"] == 0

    ProjectionRunner(provider_ledger).catch_up()
    line = _fee_line(client, shop)
    assert (line["gross"], line["refunds"], line["withdrawn"], line["net"]) == ("49.00", "0.00", "49.00", "0.00")
    assert (line["fee_charged"], line["fee_reversed"], line["fee"], line["refund_due"]) == (
        "2.45", "2.45", "0.00", "0.00")
    row = _participant(client, shop, reg["id"])
    assert row["status"] == "dispute_lost" and row["disputed"] is True
    assert (row["withdrawn"]["amount"], row["reinstated"]["amount"], row["fee"]["amount"]) == ("49.00", "0.00", "0.00")
    # The books: held 49.00 at Stripe, all of it withdrawn; no revenue, no fee owed.
    books = _books(client, shop)
    assert books["held:stripe"] == "49.00" and books["withdrawn"] == "-49.00"
    assert books["ticket_revenue"] == "0.00" and books["owed_back"] == "0.00"
    assert books["fee_payable"] == "0.00" and books["fee_expense"] == "0.00"


def test_a_dispute_won_gives_the_money_and_its_fee_back(
    client: FlaskClient, make_org: Any, servers: Servers, provider_ledger: Ledger
) -> None:
    shop = open_shop(client, make_org, servers, "stripe")
    reg, sid = _paid_stripe(shop, servers)
    dispute = servers.stripe.dispute(sid, reason="product_not_received")
    _stripe(shop, servers, "charge.dispute.created", dispute)
    _stripe(shop, servers, "charge.dispute.funds_withdrawn", dispute)
    got = shop.get(reg["id"])
    assert (got["withdrawn"]["amount"], got["fee"]["amount"], got["status"]) == ("49.00", "0.00", "paid")
    _stripe(shop, servers, "charge.dispute.funds_reinstated", dispute)
    facts = _stripe(shop, servers, "charge.dispute.closed", servers.stripe.close_dispute(dispute["id"], "won"))
    assert facts[0]["outcome"] == "dispute_won_recorded"
    got = shop.get(reg["id"])
    assert got["status"] == "paid" and got["disputed"] is False
    assert (got["withdrawn"]["amount"], got["fee"]["amount"], got["ticket_money"]["amount"]) == (
        "0.00", "2.45", "49.00")
    ProjectionRunner(provider_ledger).catch_up()
    line = _fee_line(client, shop)
    assert (line["withdrawn"], line["net"], line["fee"]) == ("0.00", "49.00", "2.45")
    books = _books(client, shop)
    assert (books["withdrawn"], books["ticket_revenue"], books["fee_payable"]) == ("0.00", "-49.00", "-2.45")


def test_a_failed_stripe_refund_is_owed_back_again(
    client: FlaskClient, make_org: Any, servers: Servers, provider_ledger: Ledger
) -> None:
    shop = open_shop(client, make_org, servers, "stripe")
    reg, sid = _paid_stripe(shop, servers)
    refund = servers.stripe.refund(sid)
    assert _stripe(shop, servers, "refund.created", refund)[0]["outcome"] == "refund_recorded"
    assert shop.get(reg["id"])["status"] == "refunded"
    failed = servers.stripe.fail_refund(refund["id"])
    assert _stripe(shop, servers, "refund.failed", failed)[0]["outcome"] == "refund_failed_recorded"
    # The same failure reported by refund.updated too: one fact.
    assert _stripe(shop, servers, "refund.updated", failed)[0]["outcome"].startswith("duplicate")
    got = shop.get(reg["id"])
    assert got["refunded"]["amount"] == "0.00" and got["refund_due"]["amount"] == "49.00"
    assert got["status"] == "refund_due" and got["failed_refunds"] == [refund["id"]]
    ProjectionRunner(provider_ledger).catch_up()
    line = _fee_line(client, shop)
    assert (line["refunds"], line["refund_due"], line["fee"]) == ("0.00", "49.00", "0.00")
    books = _books(client, shop)
    assert (books["refunds_paid"], books["owed_back"], books["ticket_revenue"]) == ("0.00", "-49.00", "0.00")


def test_a_paypal_reversal_and_dispute_end_access(
    client: FlaskClient, make_org: Any, servers: Servers, provider_ledger: Ledger
) -> None:
    shop = open_shop(client, make_org, servers, "paypal", price="25.00", currency="EUR")
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    servers.paypal.approve(order_id)
    assert shop.back(reg["id"], token=order_id).get_json()["status"] == "paid"
    capture_id = next(iter(servers.paypal.captures))
    opened = servers.paypal.dispute(capture_id)
    assert _paypal(shop, servers, "CUSTOMER.DISPUTE.CREATED", opened, "dispute")[0]["outcome"] == "disputed_recorded"
    assert shop.get(reg["id"])["disputed"] is True
    reversal = servers.paypal.reverse(capture_id)
    facts = _paypal(shop, servers, "PAYMENT.CAPTURE.REVERSED", reversal, "refund")
    assert facts[0]["outcome"] == "reversed_recorded"
    resolved = servers.paypal.dispute(capture_id, outcome="RESOLVED_BUYER_FAVOUR", dispute_id=opened["dispute_id"])
    assert _paypal(shop, servers, "CUSTOMER.DISPUTE.RESOLVED", resolved, "dispute")[0]["outcome"] == (
        "dispute_lost_recorded")
    got = shop.get(reg["id"])
    assert got["status"] == "dispute_lost" and got["closed_reason"] == "reversed"
    assert (got["withdrawn"]["amount"], got["fee"]["amount"], got["refund_due"]["amount"]) == (
        "25.00", "0.00", "0.00")
    assert shop.event_now()["tickets_sold"] == 0
    ProjectionRunner(provider_ledger).catch_up()
    line = _fee_line(client, shop)
    assert (line["gross"], line["withdrawn"], line["net"], line["fee"]) == ("25.00", "25.00", "0.00", "0.00")
    books = _books(client, shop)
    assert (books["held:paypal"], books["withdrawn"], books["ticket_revenue"]) == ("25.00", "-25.00", "0.00")


@pytest.mark.parametrize("status", ["CANCELED"])
def test_a_payu_refund_canceled_after_it_was_booked_is_owed_back(
    client: FlaskClient, make_org: Any, servers: Servers, status: str
) -> None:
    shop = open_shop(client, make_org, servers, "payu")
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    servers.payu.set_status(order_id, "COMPLETED")
    headers, body = servers.payu.signed(servers.payu.order_notification(order_id))
    assert shop.webhook(headers, body).status_code == 200
    refund = servers.payu.refund(order_id)
    headers, body = servers.payu.signed(servers.payu.refund_notification(order_id, refund))
    assert shop.webhook(headers, body).get_json()["facts"][0]["outcome"] == "refund_recorded"
    refund = {**refund, "status": status}
    headers, body = servers.payu.signed(servers.payu.refund_notification(order_id, refund))
    assert shop.webhook(headers, body).get_json()["facts"][0]["outcome"] == "refund_failed_recorded"
    got = shop.get(reg["id"])
    assert (got["refunded"]["amount"], got["refund_due"]["amount"]) == ("0.00", "49.00")
