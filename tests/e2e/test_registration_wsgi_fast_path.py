"""``api.registration_fast_path`` answers the public sign-up byte for byte as
Flask does, takes only the common case, and hands everything else to Flask.

The same sequence of requests goes to an app with the layer and to one
without it (``create_app(..., fast_path=False)``), each on events of its own;
status lines, headers (names, values, order) and bodies must be equal once the
ids each run created are replaced by placeholders.  Whether the layer answered
is seen from the outside: Flask's ``request_started`` signal fires only for
requests that went through Flask's request cycle.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import werkzeug.exceptions
from flask import Flask, Response, request_started
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from api import errors, registration_fast_path
from api.app import MAX_BODY_BYTES, create_app
from api.registration_fast_path import RegistrationFastPath
from entrypoints.bootstrap import bootstrap
from ledger import event_log
from ledger.container import Ledger
from ledger.errors import CapacityExhausted, NotFound
from tests.support.api_client import Tokens, bearer
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

Send = Callable[[FlaskClient, dict[str, str], str], TestResponse]
JSON = "application/json"


def _post(path: str, body: Any, content_type: str = JSON, **headers: str) -> Send:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()

    def send(client: FlaskClient, events: dict[str, str], run: str) -> TestResponse:
        named = {k: v.replace("{run}", run) for k, v in headers.items()}
        return client.post(path.format(**events), data=data, content_type=content_type, headers=named)

    return send


REG = "/v1/events/{event}/registrations"
ADA = {"name": "Ada", "email": "ada@example.com"}

#: (name, request, answered by the layer?) in the order they are sent.
CASES: list[tuple[str, Send, bool]] = [
    ("created", _post(REG, ADA), True),
    ("same e-mail again", _post(REG, ADA), True),
    ("non-ASCII text, fields, language", _post(REG, {"name": "Zoë Łukasz 日本", "email": "zoe@example.com",
                                                    "fields": {"firma": "Łódź"}, "language": "pl"}), True),
    ("charset parameter", _post(REG, {"name": "Cy", "email": "cy@example.com"}, "application/json; charset=utf-8"),
     True),
    ("unknown event", _post("/v1/events/no-such-event/registrations", ADA), True),
    ("full event, first", _post("/v1/events/{full}/registrations", ADA), True),
    ("full event, sold out", _post("/v1/events/{full}/registrations", {"name": "B", "email": "b@example.com"}),
     True),
    ("missing e-mail", _post(REG, {"name": "Ada"}), False),
    ("bad e-mail", _post(REG, {"name": "Ada", "email": "not-an-address"}), False),
    ("unknown field", _post(REG, {**ADA, "age": 3}), False),
    ("bad language", _post(REG, {**ADA, "language": "de"}), False),
    ("not JSON", _post(REG, b"{"), False),
    ("a JSON array", _post(REG, b"[]"), False),
    ("NaN", _post(REG, b'{"name": NaN, "email": "a@example.com"}'), False),
    ("NUL in a name", _post(REG, {"name": "A\u0000", "email": "nul@example.com"}), False),
    ("lone surrogate", _post(REG, b'{"name": "\\ud800", "email": "s@example.com"}'), False),
    ("not UTF-8", _post(REG, b'{"name": "\xff", "email": "s@example.com"}'), False),
    ("empty body", _post(REG, b""), False),
    ("text/plain", _post(REG, ADA, "text/plain"), False),
    ("form", _post(REG, b"name=Ada&email=ada%40example.com", "application/x-www-form-urlencoded"), False),
    ("oversize", _post(REG, {**ADA, "fields": {"x": "y" * MAX_BODY_BYTES}}), False),
    ("query string", _post(REG + "?x=1", {"name": "Q", "email": "q@example.com"}), False),
    ("Idempotency-Key", _post(REG, {"name": "K", "email": "k@example.com"}, **{"Idempotency-Key": "k-{run}"}),
     False),
    ("Idempotency-Key replayed", _post(REG, {"name": "K", "email": "k@example.com"},
                                       **{"Idempotency-Key": "k-{run}"}), False),
    ("a cookie", lambda client, events, run: _with_cookie(client, _post(REG, {"name": "C", "email": "c@example.com"}),
                                                         events, run), False),
    ("If-Match", _post(REG, {"name": "M", "email": "m@example.com"}, **{"If-Match": '"1"'}), False),
    ("odd event id", _post("/v1/events/%C5%81%20x/registrations", ADA), False),
    ("trailing slash", _post(REG + "/", ADA), False),
    ("GET", lambda client, events, run: client.get(REG.format(**events)), False),
    ("registered after all that", _post(REG, {"name": "Last", "email": "last@example.com"}), True),
]

def _with_cookie(client: FlaskClient, send: Send, events: dict[str, str], run: str) -> TestResponse:
    """(The test client sends the cookies of its jar, not a ``Cookie`` header.)"""
    client.set_cookie("ledger_session", "x", path="/")
    try:
        return send(client, events, run)
    finally:
        client.delete_cookie("ledger_session", path="/")


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Run:
    """One app, its own events, and what it answered (ids replaced)."""

    def __init__(self, name: str, app: Flask, client: FlaskClient, events: dict[str, str]) -> None:
        self.name, self.app, self.client, self.events = name, app, client, events
        self.ids: dict[str, str] = {events[k]: f"<{k}>" for k in events}
        self.flask_requests = 0
        request_started.connect(self._started, app)

    def _started(self, sender: Flask, **_: Any) -> None:
        self.flask_requests += 1

    def _placeholders(self, text: str) -> str:
        return _UUID.sub(lambda m: self.ids.setdefault(m.group(), f"<id{len(self.ids)}>"), text)

    def send(self, case: Send) -> tuple[str, list[tuple[str, str]], str]:
        response = case(self.client, self.events, self.name)
        headers = [(k, self._placeholders(v)) for k, v in response.headers.items()]
        return response.status, headers, self._placeholders(response.get_data().decode("utf-8", "replace"))


@pytest.fixture(scope="module")
def unlimited(pg_server: TestServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ledger]:
    """A ledger without the registration limit (the tests' default is a high
    one), as the layer needs."""
    settings = make_settings(tmp_path_factory.mktemp("fast_path"), LEDGER_RATE_LIMIT_REGISTRATION="off")
    ledger = bootstrap(settings, url=pg_server.new_database(), pool_size=4)
    yield ledger
    ledger.close()


@pytest.fixture(scope="module")
def runs(unlimited: Ledger) -> Iterator[tuple[Run, Run]]:
    tokens = Tokens.issue(unlimited)
    made = []
    for name, fast in (("fast", True), ("flask", False)):
        app = create_app(unlimited, fast_path=fast)
        client = app.test_client()
        events = {"event": _event(client, tokens, plan_size=50), "full": _event(client, tokens, plan_size=1)}
        made.append(Run(name, app, client, events))
    yield made[0], made[1]
    for run in made:
        request_started.disconnect(run._started, run.app)


def _event(client: FlaskClient, tokens: Tokens, plan_size: int) -> str:
    r = client.post("/v1/organizers", json={"name": "Org", "country": "US", "plan_size": plan_size},
                    headers=bearer(tokens.admin))
    org = bearer(tokens.organizer(r.get_json()["id"]))
    assert client.post(f"/v1/organizers/{r.get_json()['id']}/providers", json={"provider": "manual"},
                       headers=org).status_code == 201
    r = client.post("/v1/events", headers=org, json={
        "title": "Webinar", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": False,
        "price": {"amount": "49.00", "currency": "USD"}, "provider": "manual"})
    assert r.status_code == 201, r.get_json()
    return str(r.get_json()["id"])


def test_the_layer_is_in_front_of_the_app_by_default(runs: tuple[Run, Run]) -> None:
    fast, flask = runs
    assert isinstance(fast.app.wsgi_app, RegistrationFastPath)
    assert not isinstance(flask.app.wsgi_app, RegistrationFastPath)


def test_every_answer_is_the_same_byte_for_byte_and_only_the_common_case_is_taken(runs: tuple[Run, Run]) -> None:
    fast, flask = runs
    layer = fast.app.wsgi_app
    assert isinstance(layer, RegistrationFastPath)
    statuses, bodies = {}, {}
    for name, case, taken in CASES:
        served, through_flask = layer.served, fast.flask_requests
        answer = fast.send(case)
        assert answer == flask.send(case), name
        assert (layer.served - served, fast.flask_requests - through_flask) == ((1, 0) if taken else (0, 1)), name
        statuses[name] = answer[0]
        bodies[name] = answer[2]
    # The sequence covers what it says it covers.
    assert statuses["created"] == "201 CREATED" and statuses["same e-mail again"] == "200 OK"
    assert statuses["unknown event"].startswith("404") and statuses["full event, sold out"].startswith("422")
    assert '"code":"capacity_exhausted"' in bodies["full event, sold out"].replace(" ", "")
    assert statuses["missing e-mail"].startswith("422") and statuses["not JSON"].startswith("400")
    assert statuses["oversize"].startswith("413") and statuses["GET"].startswith("405")
    assert statuses["Idempotency-Key"] == statuses["Idempotency-Key replayed"] == "201 CREATED"
    assert statuses["a cookie"] == statuses["If-Match"] == statuses["registered after all that"] == "201 CREATED"
    assert statuses["non-ASCII text, fields, language"] == statuses["charset parameter"] == "201 CREATED"


def test_the_answer_carries_the_documented_headers(runs: tuple[Run, Run]) -> None:
    fast, _ = runs
    status, headers, body = fast.send(_post(REG, {"name": "H", "email": "h@example.com"}))
    assert status == "201 CREATED"
    names = [k for k, _ in headers]
    assert names == ["Content-Type", "Content-Length", "ETag", "Location"]
    assert list(json.loads(body)) == ["id", "version", "event_id", "status", "price", "checkout"]


def test_the_events_of_a_fast_registration_name_the_public_actor(runs: tuple[Run, Run], unlimited: Ledger) -> None:
    """Also right after a request on the same thread whose actor the context
    variable still holds (a webhook path names its provider)."""
    fast, _ = runs
    event = _event(fast.client, Tokens.issue(unlimited), plan_size=50)
    assert fast.client.post("/v1/webhooks/stripe/conn-1/anything").status_code == 404  # actor provider:stripe:conn-1
    r = fast.client.post(f"/v1/events/{event}/registrations", json={"name": "Au", "email": "audit@example.com"})
    assert r.status_code == 201
    registration_id = r.get_json()["id"]
    [created] = event_log.read_aggregate(unlimited.store, registration_id, after=0, limit=10)
    holds = [item for item in event_log.read_aggregate(unlimited.store, event, after=0, limit=100)
             if item.type.endswith("SeatHeld") and item.data["registration_id"] == registration_id]
    assert created.actor == "public" and [hold.actor for hold in holds] == ["public"]


def test_with_the_registration_limit_on_every_sign_up_goes_through_flask(pg_server: TestServer,
                                                                         tmp_path: Path) -> None:
    ledger = bootstrap(make_settings(tmp_path, LEDGER_RATE_LIMIT_REGISTRATION="2 per minute",
                                     LEDGER_RATE_LIMIT_STORAGE="memory"), url=pg_server.new_database(), pool_size=4)
    try:
        app = create_app(ledger)
        assert not isinstance(app.wsgi_app, RegistrationFastPath)
        client = app.test_client()
        event = _event(client, Tokens.issue(ledger), plan_size=50)
        codes = [client.post(f"/v1/events/{event}/registrations",
                             json={"name": "R", "email": f"r{i}@example.com"}).status_code for i in range(3)]
        assert codes == [201, 201, 429]
    finally:
        ledger.close()


def test_a_hook_the_layer_does_not_know_stops_the_app_at_start_up(unlimited: Ledger) -> None:
    app = create_app(unlimited, fast_path=False)
    app.before_request(lambda: None)
    with pytest.raises(RuntimeError, match="before_request hooks"):
        registration_fast_path.install(app, unlimited.registrations, MAX_BODY_BYTES)


@pytest.mark.parametrize("exc", [NotFound("no such event", field="event_id"), CapacityExhausted("sold out"),
                                 werkzeug.exceptions.NotFound(), RuntimeError("boom")], ids=repr)
def test_what_the_desk_raises_is_rendered_as_flasks_handlers_render_it(unlimited: Ledger, exc: Exception) -> None:
    app = create_app(unlimited, fast_path=False)
    with app.test_request_context("/v1/events/e-1/registrations", method="POST"):
        by_flask = app.handle_user_exception(exc)
    assert isinstance(by_flask, Response)
    by_layer = errors.render(exc)
    assert (by_layer.status, list(by_layer.headers), by_layer.get_data()) == (
        by_flask.status, list(by_flask.headers), by_flask.get_data())
