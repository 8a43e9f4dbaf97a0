"""Bad input (issue 11): every write endpoint and every webhook, fuzzed around a
valid request.  Whatever arrives, the answer is never a 5xx (a provider retries
a 5xx forever); a 4xx is problem+json with a stable ``code``; and a 4xx writes
nothing to the event log.

Each test first sends every known bad class (lone surrogates, 30,000 nested
``[``, a 4,301-digit integer, ``NaN``, a body that is not UTF-8, NUL, absurd
amounts, ``starts_at`` beyond ``datetime``'s range, non-ASCII ``If-Match``;
for webhooks, signed bodies of odd shapes), then lets Hypothesis replace any
part of the request with any JSON value (``LEDGER_FUZZ_EXAMPLES`` each, 25 by
default).  Webhook bodies carry real signatures (tests/contracts/webhook_signing.py).
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from ledger.container import Ledger
from tests.contracts.webhook_signing import payu_signature, stripe_signature
from tests.e2e import test_providers_support as kit
from tests.e2e.test_providers_support import Servers, Shop, open_shop
from tests.support.api_client import bearer

app = kit.app
provider_ledger = kit.provider_ledger
servers = kit.servers
tokens = kit.tokens

EXAMPLES = int(os.environ.get("LEDGER_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))

Json = Any
Path = tuple[str | int, ...]

#: Text that no UTF-8 encoder takes, that PostgreSQL text cannot hold, or
#: that str.isdigit() takes although int() refuses it or reads another number.
BAD_TEXT = ["\ud800", "a\udfffb", "\udc00\ud800", "nul\x00", "²", "٣", "é" * 3, "", " " * 3, "x" * 3000]
#: Raw JSON spliced into a body where a value goes.
BAD_RAW = ["[" * 30_000, "1" * 4_301, "-" + "9" * 5_000, "NaN", "Infinity", "1e999", "[" * 990 + "]" * 990]
#: ``starts_at`` beyond datetime's range once in UTC, and other odd times.
BAD_TIMES = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59+00:00",
             "2026-13-01T00:00:00+00:00", "2037-12-01T18:00:00", "2037-12-01T18:00:00+24:00"]
BAD_AMOUNTS = ["100000000000000000.00", "1" * 5_000, "20000.01", "-1.00", "1e3", "49.001", "٣٣.00", "NaN"]
#: If-Match values as a WSGI server hands them over (latin-1 decoded bytes).
BAD_IF_MATCH = ['"²"', '"é"', '"\u0663"'.encode().decode("latin-1"), '"99999999999999999999999"', '"-1"', "*"]


#: Lone surrogates (``st.characters()`` leaves them out).
SURROGATES = st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1, max_size=2)


def json_values() -> st.SearchStrategy[Json]:
    text = st.one_of(st.sampled_from(BAD_TEXT), st.text(max_size=20), SURROGATES)
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                        max_leaves=8)


# --- requests -------------------------------------------------------------------------------


def dump(body: Json, raw: dict[str, str] | None = None) -> bytes:
    """Strict JSON (lone surrogates as ``\\ud800`` escapes), with ``raw``
    texts spliced in where their placeholder strings are."""
    text = json.dumps(body)
    for placeholder, value in (raw or {}).items():
        text = text.replace(json.dumps(placeholder), value)
    return text.encode()


def leaves(body: Json, path: Path = ()) -> Iterator[Path]:
    if isinstance(body, dict) and body:
        for key, value in body.items():
            yield from leaves(value, (*path, key))
    elif isinstance(body, list) and body:
        for i, value in enumerate(body):
            yield from leaves(value, (*path, i))
    else:
        yield path


def replaced(body: Json, path: Path, value: Json) -> Json:
    if not path:
        return value
    copy = json.loads(json.dumps(body))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def events_written(ledger: Ledger) -> int:
    with ledger.db.transaction() as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events").fetchone()
    assert row is not None
    return int(row[0])


_ADDRESS = iter(range(1, 10**9))


def check(ledger: Ledger, send: Callable[[], TestResponse], what: str) -> TestResponse:
    """Send; never a 5xx; a 4xx is problem+json and writes no event."""
    before = events_written(ledger)
    response = send()
    status = response.status_code
    assert status < 500, f"{what}: {status} {response.get_data(as_text=True)[:300]}"
    if status >= 400:
        assert response.mimetype == "application/problem+json", (what, status, response.mimetype)
        problem = response.get_json()
        assert {"type", "title", "status", "detail", "code"} <= problem.keys(), (what, problem)
        assert problem["status"] == status and re.fullmatch("[a-z][a-z0-9_]*", problem["code"]), (what, problem)
        assert events_written(ledger) == before, f"{what}: {status} {problem['code']} wrote events"
    return response


# --- write endpoints -------------------------------------------------------------------------


@dataclass
class World:
    client: FlaskClient
    admin: dict[str, str]
    org_id: str
    org: dict[str, str]
    event_id: str
    registration_id: str

    def post(self, path: str, data: bytes, headers: dict[str, str], method: str = "POST") -> TestResponse:
        peer = next(_ADDRESS)  # one client per request: rate limits are not what is tested here
        return self.client.open(path, method=method, data=data, headers={"Content-Type": "application/json",
                                **headers}, environ_base={"REMOTE_ADDR": f"10.{peer >> 16 & 255}.{peer >> 8 & 255}."
                                                                         f"{peer & 255}"})


@pytest.fixture
def world(client: FlaskClient, make_org: Any, tokens: Any) -> World:
    org = make_org(plan_size=1000)
    admin = bearer(tokens.admin)
    body = {"title": "Fuzzed", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": False,
            "price": {"amount": "49.00", "currency": "USD"}, "provider": "manual"}
    event = client.post("/v1/events", json=body, headers=org.headers).get_json()
    registration = client.post(f"/v1/events/{event['id']}/registrations",
                               json={"name": "Ada", "email": "ada@example.test"}).get_json()
    return World(client, admin, org.id, org.headers, event["id"], registration["id"])


#: name -> (method, path, who, a valid body)
ENDPOINTS: dict[str, tuple[str, str, str, Json]] = {
    "create organizer": ("POST", "/v1/organizers", "admin", {"name": "O", "country": "US", "plan_size": 5}),
    "change plan": ("POST", "/v1/organizers/{org}/plan", "admin", {"plan_size": 7}),
    "connect provider": ("POST", "/v1/organizers/{org}/providers", "org", {"provider": "manual"}),
    "issue token": ("POST", "/v1/tokens", "admin", {"role": "finance", "label": "fuzz"}),
    "create event": ("POST", "/v1/events", "org", {
        "title": "T", "description": "d", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": True,
        "timezone": "Europe/Warsaw", "sessions": [{"starts_at": "2037-12-02T18:00:00+01:00"}],
        "price": {"amount": "49.00", "currency": "USD"}, "provider": "manual"}),
    "edit event": ("PATCH", "/v1/events/{event}", "org", {"title": "T2", "description": "d2"}),
    "reschedule": ("POST", "/v1/events/{event}/reschedule", "org", {"starts_at": "2037-12-03T18:00:00+01:00"}),
    "cancel event": ("POST", "/v1/events/{event}/cancel", "org", {"reason": "r"}),
    "register": ("POST", "/v1/events/{event}/registrations", "public", {
        "name": "N", "email": "n@example.test", "fields": {"company": "C"}, "language": "pl"}),
    "record payment": ("POST", "/v1/registrations/{registration}/payments", "org", {
        "amount": {"amount": "49.00", "currency": "USD"}, "provider": "manual", "reference": "bank-1"}),
    "confirm": ("POST", "/v1/registrations/{registration}/confirm", "org", {}),
    "reject": ("POST", "/v1/registrations/{registration}/reject", "org", {"reason": "r"}),
    "resend confirmation": ("POST", "/v1/registrations/{registration}/resend-confirmation", "org", {}),
    "record refund": ("POST", "/v1/registrations/{registration}/refunds", "org", {
        "amount": {"amount": "1.00", "currency": "USD"}, "reference": "refund-1"}),
    "continue checkout": ("POST", "/v1/registrations/{registration}/checkout", "public", {}),
}


def _bad_bodies(body: Json) -> Iterator[tuple[str, bytes]]:
    """Every known bad class, at every place of ``body`` it fits."""
    paths = list(leaves(body)) if body else [()]
    for path in paths:
        for text in BAD_TEXT[:4]:
            yield f"{text!r} at {path}", dump(replaced(body, path, text))
        for raw in BAD_RAW:
            yield f"raw {raw[:12]}… at {path}", dump(replaced(body, path, "\x01raw"), {"\x01raw": raw})
        if path and path[-1] == "starts_at":
            for when in BAD_TIMES:
                yield f"starts_at {when}", dump(replaced(body, path, when))
        if path and path[-1] == "amount":
            for amount in BAD_AMOUNTS:
                yield f"amount {amount[:24]}", dump(replaced(body, path, amount))
    if isinstance(body, dict):
        yield "surrogate key", dump({**body, "\udc00": "x"})
    yield "30,000 [", b"[" * 30_000
    yield "4,301 digits", b"1" * 4_301
    yield "not UTF-8", b'{"name": "\xff\xfe"}'


@pytest.mark.parametrize("name", sorted(ENDPOINTS))
def test_no_input_to_a_write_endpoint_is_a_server_error(
    name: str, world: World, provider_ledger: Ledger
) -> None:
    method, template, who, body = ENDPOINTS[name]
    path = template.format(org=world.org_id, event=world.event_id, registration=world.registration_id)
    headers = {"admin": world.admin, "org": world.org, "public": {}}[who]

    for what, data in _bad_bodies(body):
        check(provider_ledger, partial(world.post, path, data, headers, method), f"{name}: {what}")
    for value in BAD_IF_MATCH:
        check(provider_ledger, partial(world.post, path, dump(body), {**headers, "If-Match": value}, method),
              f"{name}: If-Match {value!r}")

    @FUZZ
    @given(where=st.sampled_from(list(leaves(body)) if body else [()]), value=json_values(),
           if_match=st.none() | st.sampled_from(BAD_IF_MATCH)
           | st.text(st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=30))
    def fuzz(where: Path, value: Json, if_match: str | None) -> None:
        extra = {} if if_match is None else {"If-Match": if_match}
        check(provider_ledger, partial(world.post, path, dump(replaced(body, where, value)), {**headers, **extra},
                                       method), f"{name}: {value!r} at {where}")

    fuzz()


def test_an_absurd_payment_on_a_rejected_registration_is_refused(world: World, provider_ledger: Ledger) -> None:
    """Issue 11 item 2 exactly: accepted before, then it stopped every view."""
    check(provider_ledger, lambda: world.post(f"/v1/registrations/{world.registration_id}/reject",
                                              dump({"reason": "r"}), world.org), "reject")
    r = check(provider_ledger, lambda: world.post(f"/v1/registrations/{world.registration_id}/payments", dump({
        "amount": {"amount": "100000000000000000.00", "currency": "USD"}, "reference": "r"}), world.org), "pay")
    assert (r.status_code, r.get_json()["code"]) == (422, "amount_above_limit")
    assert r.get_json()["errors"] == {"amount.amount": ["at most 20000.00 USD is accepted"]}
    r = check(provider_ledger, lambda: world.post(f"/v1/registrations/{world.registration_id}/payments", dump({
        "amount": {"amount": "20000.00", "currency": "USD"}, "reference": "r"}), world.org), "pay")
    assert r.status_code == 200 and r.get_json()["refund_due"] == {"amount": "20000.00", "currency": "USD"}


@pytest.mark.parametrize(("path", "after"), [
    (path, after)
    for path in ("/v1/ledger/events", "/v1/events/{event}/participants")
    for after in ["²", "٣", "٣٣", "é", "%ED%A0%80", "-1", "1" * 40, "%ff", "%00",
                  base64.urlsafe_b64encode("c1:²".encode()).decode(), base64.urlsafe_b64encode("c1:٣".encode()).decode()]
])
def test_non_ascii_after_cursors_are_a_422(world: World, tokens: Any, path: str, after: str) -> None:
    finance = bearer(tokens.finance)
    url = path.format(event=world.event_id)
    if after.startswith("%"):  # sent percent-encoded as it is: an undecodable or NUL byte
        r = world.client.get(f"{url}?after={after}", headers=finance)
    else:
        r = world.client.get(url, query_string={"after": after}, headers=finance)
    assert (r.status_code, r.mimetype) == (422, "application/problem+json"), r.get_data(as_text=True)[:200]
    assert r.get_json()["code"] in ("validation_failed", "invalid_cursor")


@FUZZ
@given(after=st.text(max_size=30))
def test_any_after_cursor_is_a_page_or_a_422(client: FlaskClient, tokens: Any, after: str) -> None:
    for path in ("/v1/ledger/events", "/v1/events/00000000-0000-0000-0000-000000000000/participants"):
        r = client.get(path, query_string={"after": after}, headers=bearer(tokens.finance))
        assert r.status_code in (200, 404, 422), (path, after, r.status_code)


# --- webhooks ---------------------------------------------------------------------------------


@dataclass
class Delivery:
    """A provider's valid notification for a shop's registration, and how to sign any body."""

    shop: Shop
    event: Json
    sign: Callable[[bytes], dict[str, str]]
    #: paths inside ``event`` worth breaking (the ones the gateway reads)
    targets: list[Path]

    def send(self, body: bytes) -> TestResponse:
        return self.shop.webhook(self.sign(body), body)


def _stripe(shop: Shop, servers: Servers) -> Delivery:
    reg = shop.registered()
    session = servers.stripe.complete(shop.reference(reg["id"]))
    event = servers.stripe.event("checkout.session.completed", session)
    secret = servers.stripe.webhook_secret

    def sign(body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json", "Stripe-Signature": stripe_signature(body, secret, int(time.time()))}

    o = ("data", "object")
    return Delivery(shop, event, sign, [(), ("type",), ("data",), o, (*o, "amount_total"), (*o, "currency"),
                                        (*o, "metadata"), (*o, "metadata", "registration_id"), (*o, "id"),
                                        (*o, "payment_status"), (*o, "client_reference_id")])


def _payu(shop: Shop, servers: Servers) -> Delivery:
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    servers.payu.set_status(order_id, "COMPLETED")
    event = servers.payu.order_notification(order_id)
    key = servers.payu.second_key

    def sign(body: bytes) -> dict[str, str]:
        return {"Content-Type": "application/json", "OpenPayu-Signature": payu_signature(body, key)}

    return Delivery(shop, event, sign, [(), ("order",), ("order", "totalAmount"), ("order", "currencyCode"),
                                        ("order", "status"), ("order", "orderId"), ("order", "extOrderId"),
                                        ("refund",)])


def _paypal(shop: Shop, servers: Servers) -> Delivery:
    reg = shop.registered()
    order_id = shop.reference(reg["id"])
    servers.paypal.approve(order_id)
    back = shop.back(reg["id"], token=order_id)  # the return captures it
    assert back.status_code == 200, back.get_json()
    capture = next(c for c in servers.paypal.captures.values()
                   if c["supplementary_data"]["related_ids"]["order_id"] == order_id)
    event = servers.paypal.event("PAYMENT.CAPTURE.COMPLETED", capture)

    def sign(body: bytes) -> dict[str, str]:
        # PayPal's verifier (the contract server's) re-reads the event: sign what it will hash.
        headers, _ = servers.paypal.signed(json.loads(body))
        return headers

    r = ("resource",)
    return Delivery(shop, event, sign, [(), r, (*r, "amount"), (*r, "amount", "value"), (*r, "amount", "currency_code"),
                                        (*r, "custom_id"), (*r, "supplementary_data"), (*r, "status"), (*r, "id")])


DELIVERIES = {"stripe": _stripe, "payu": _payu, "paypal": _paypal}

#: Odd shapes a signed body may have: (path, value), each a 400 ``malformed_notification``.
ODD_SHAPES: dict[str, list[tuple[Path, Json]]] = {
    "stripe": [(("data", "object", "amount_total"), "49.00"), (("data", "object", "metadata"), ["registration_id"]),
               (("data", "object", "metadata"), "x"), (("data", "object", "amount_total"), 10**30),
               (("data", "object", "amount_total"), 4900.0), (("data", "object", "currency"), 840),
               (("data",), []), (("data", "object"), "cs_1"), (("data", "object", "id"), "cs_\ud800")],
    "payu": [(("order", "totalAmount"), None), (("order", "totalAmount"), "abc"), (("order", "totalAmount"), "49.00"),
             (("order", "totalAmount"), "1" * 40), (("order",), ["x"]), (("order", "currencyCode"), ["PLN"]),
             (("order", "orderId"), "\ud800"), (("refund",), "x")],
    "paypal": [(("resource", "amount", "value"), "abc"), (("resource", "amount", "value"), 49),
               (("resource", "amount"), ["49.00"]), (("resource", "supplementary_data"), "x"),
               (("resource", "amount", "value"), "1" * 40), (("resource",), [])],
}


@pytest.fixture(params=sorted(DELIVERIES))
def delivery(request: pytest.FixtureRequest, client: FlaskClient, make_org: Any, servers: Servers) -> Delivery:
    name = request.param
    return DELIVERIES[name](open_shop(client, make_org, servers, name), servers)


def _drop(body: Json, path: Path) -> Json:
    copy = json.loads(json.dumps(body))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target.pop(path[-1], None)
    return copy


def test_no_signed_webhook_body_is_a_server_error(delivery: Delivery, provider_ledger: Ledger) -> None:
    provider = delivery.shop.provider
    paypal = provider == "paypal"  # its verifier hashes the event as canonical UTF-8: no lone surrogates
    for path, value in ODD_SHAPES[provider]:
        if paypal and "\ud800" in json.dumps(value, ensure_ascii=False, default=str):
            continue
        r = check(provider_ledger, partial(delivery.send, dump(replaced(delivery.event, path, value))),
                  f"{provider}: {value!r} at {path}")
        assert (r.status_code, r.get_json()["code"]) == (400, "malformed_notification"), (provider, path, value)
    for path in delivery.targets[1:]:
        check(provider_ledger, partial(delivery.send, dump(_drop(delivery.event, path))), f"{provider}: no {path}")
    if not paypal:
        for raw in BAD_RAW:
            check(provider_ledger, partial(delivery.send, raw.encode()), f"{provider}: raw {raw[:12]}")

    texts = st.text(max_size=20) if paypal else st.text(max_size=20) | SURROGATES
    values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
                          max_leaves=6)

    @FUZZ
    @given(where=st.sampled_from(delivery.targets), value=values)
    def fuzz(where: Path, value: Json) -> None:
        body = dump(replaced(delivery.event, where, value))
        check(provider_ledger, partial(delivery.send, body), f"{provider}: {value!r} at {where}")

    fuzz()


def test_a_signed_absurd_amount_is_acknowledged_and_refused_never_recorded(
    client: FlaskClient, make_org: Any, servers: Servers, provider_ledger: Ledger
) -> None:
    """R21 for webhooks (documented in ledger/providers/notification_fields.py):
    a well-formed amount above the bound is kept as a refused fact and
    answered 200 -- the provider stops retrying, nothing is recorded."""
    shop = open_shop(client, make_org, servers, "stripe")
    delivery = _stripe(shop, servers)
    path = ("data", "object", "amount_total")
    before = events_written(provider_ledger)
    r = delivery.send(dump(replaced(delivery.event, path, 10**15)))
    assert r.status_code == 200, r.get_json()
    assert [f["outcome"] for f in r.get_json()["facts"]] == ["refused_amount_above_limit"]
    assert events_written(provider_ledger) == before
    r = delivery.send(dump(replaced(delivery.event, path, 10**16)))  # beyond 2**53: not even a fact
    assert (r.status_code, r.get_json()["code"]) == (400, "malformed_notification")


def test_json_errors_that_get_past_the_guard_are_still_a_400_not_a_500() -> None:
    """api/errors.py's second line of defence recognises the JSON decoder's own
    RecursionError and ValueError (and nothing else)."""
    from api.errors import _raised_parsing_json

    for text in ("[" * 30_000, "1" * 4_301):
        with pytest.raises((RecursionError, ValueError)) as raised:
            json.loads(text)
        assert _raised_parsing_json(raised.value)
    with pytest.raises(ValueError) as other:
        int("not a number")
    assert not _raised_parsing_json(other.value)
