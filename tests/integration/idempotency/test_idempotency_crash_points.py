"""An ``Idempotency-Key`` retry after a crash never runs a command twice
(issue 11, item 3): every keyed write, at every crash point, against the real
server process killed with SIGKILL while PostgreSQL holds it at that point.

Crash points (one round each; all commands of a round are in flight at once
and die with one ``kill -9`` of the server's process group):

* ``before_commit`` — the test holds ``LOCK TABLE <events> IN EXCLUSIVE MODE``
  (and ``api_tokens``): every command has claimed its key and waits to write.
  Nothing of it may be committed; the retry runs it exactly once.
* ``after_commit`` — a trigger the test adds to ``idempotency_keys`` makes the
  UPDATE that completes a key (``state = 'done'``) wait for an advisory lock the
  test holds: every command's events are committed, its key is not completed.
  The retry must answer 2xx from what was committed and record nothing again.
  For ``POST /v1/tokens`` (nothing to complete: the answer is never stored) this
  point is the response lost after the commit, which leaves the same state.

Between kill and retry the keys' claims are aged past ``STALE_CLAIM``: the
client retries a minute later, as a client of a crashed server does.

Each command also runs once, without a crash, on a twin of its aggregates: the
events the crashed command and its retry left must be exactly that set.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import requests

from entrypoints.bootstrap import bootstrap
from ledger import api_tokens
from ledger.container import Ledger
from tests.contracts.stripe_contract import StripeContractServer
from tests.integration.idempotency.server_process import ServerProcess
from tests.support.postgres import TestServer
from tests.support.settings import make_settings

PUBLIC_URL = "http://ledger.test"  # fixed: Stripe replays a session only for identical URLs
HOLD_COMPLETE = 711_003  # the advisory lock the test trigger waits on
USD = {"amount": "49.00", "currency": "USD"}
POINTS = ("before_commit", "after_commit")


@dataclass
class Request:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    owned: list[str]  # aggregates whose events belong to this command
    expect: int
    label: str = ""  # POST /v1/tokens: the token's label


@dataclass
class World:
    """The running server, its database, and helpers to set up aggregates over HTTP."""

    ledger: Ledger
    server: ServerProcess
    stripe: StripeContractServer
    admin: dict[str, str]
    events_table: str
    stripe_event: str = ""

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             timeout: float = 30) -> requests.Response:
        return requests.request(method, self.server.base_url + path, json=body, headers=headers or {},
                                timeout=timeout)

    def ok(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        r = self.call(method, path, body, headers)
        assert r.status_code < 300, (path, r.status_code, r.text)
        return r.json()

    def org(self, *providers: str) -> tuple[str, dict[str, str]]:
        org = self.ok("POST", "/v1/organizers", {"name": "Org", "country": "US", "plan_size": 50}, self.admin)["id"]
        headers = {"Authorization": "Bearer " + api_tokens.create_token(
            self.ledger.db, role="organizer", organizer_id=org)}
        for provider in providers:
            body = {"provider": provider, **(self.stripe.credentials() if provider == "stripe" else {})}
            self.ok("POST", f"/v1/organizers/{org}/providers", body, headers)
        return org, headers

    def event(self, headers: dict[str, str], provider: str = "manual") -> str:
        body = {"title": "Webinar", "starts_at": "2038-03-01T18:00:00+01:00", "permanent": False,
                "price": USD, "provider": provider}
        return str(self.ok("POST", "/v1/events", body, headers)["id"])

    def registration(self, event_id: str) -> str:
        return str(self.ok("POST", f"/v1/events/{event_id}/registrations",
                           {"name": "Ada", "email": "ada@example.test"})["id"])

    def paid(self, event_id: str, headers: dict[str, str]) -> str:
        rid = self.registration(event_id)
        self.ok("POST", f"/v1/registrations/{rid}/payments",
                {"amount": USD, "provider": "manual", "reference": f"cash-{rid}"}, headers)
        return rid


def _organizers(w: World) -> Request:
    return Request("POST", "/v1/organizers", {"name": "New org", "country": "PL", "plan_size": 20}, w.admin, [], 201)


def _plan(w: World) -> Request:
    org, _ = w.org()
    return Request("POST", f"/v1/organizers/{org}/plan", {"plan_size": 70}, w.admin, [org], 200)


def _providers(w: World) -> Request:
    org, headers = w.org()
    return Request("POST", f"/v1/organizers/{org}/providers", {"provider": "manual"}, headers, [org], 201)


def _events(w: World) -> Request:
    _, headers = w.org("manual")
    body = {"title": "Created", "starts_at": "2038-03-01T18:00:00+01:00", "permanent": False,
            "price": USD, "provider": "manual"}
    return Request("POST", "/v1/events", body, headers, [], 201)


def _edit(w: World) -> Request:
    _, headers = w.org("manual")
    event = w.event(headers)
    return Request("PATCH", f"/v1/events/{event}", {"title": "Renamed"}, headers, [event], 200)


def _reschedule(w: World) -> Request:
    _, headers = w.org("manual")
    event = w.event(headers)
    return Request("POST", f"/v1/events/{event}/reschedule", {"starts_at": "2038-04-01T18:00:00+02:00"},
                   headers, [event], 200)


def _cancel(w: World) -> Request:
    _, headers = w.org("manual")
    event = w.event(headers)
    rid = w.paid(event, headers)
    return Request("POST", f"/v1/events/{event}/cancel", {"reason": "speaker ill"}, headers, [event, rid], 200)


def _registrations(w: World) -> Request:
    _, headers = w.org("manual")
    event = w.event(headers)
    return Request("POST", f"/v1/events/{event}/registrations", {"name": "Bo", "email": "bo@example.test"},
                   {}, [event], 201)


def _registration_command(kind: str, body: Any, expect: int, *, paid: bool) -> Callable[[World], Request]:
    def build(w: World) -> Request:
        _, headers = w.org("manual")
        event = w.event(headers)
        rid = w.paid(event, headers) if paid else w.registration(event)
        return Request("POST", f"/v1/registrations/{rid}/{kind}", body, headers, [event, rid], expect)

    return build


def _tokens(w: World) -> Request:
    label = f"crash-{uuid.uuid4().hex[:8]}"
    return Request("POST", "/v1/tokens", {"role": "finance", "label": label}, w.admin, [], 201, label=label)


def _checkout(w: World) -> Request:
    """A registration whose checkout a Stripe outage interrupted: the retry
    endpoint opens it (public)."""
    w.stripe.fail_next(1, 503, path=r"/v1/checkout/sessions")
    r = w.call("POST", f"/v1/events/{w.stripe_event}/registrations", {"name": "Cy", "email": f"cy+{uuid.uuid4().hex[:8]}@example.test"})
    assert r.status_code == 503, r.text
    found = re.search(r"Registration ([0-9a-f-]{36}) is kept", r.json()["detail"])
    assert found, r.text
    rid = found.group(1)
    return Request("POST", f"/v1/registrations/{rid}/checkout", None, {}, [rid], 200)


COMMANDS: dict[str, Callable[[World], Request]] = {
    "organizers": _organizers,
    "plan": _plan,
    "providers": _providers,
    "events": _events,
    "edit (PATCH)": _edit,
    "reschedule": _reschedule,
    "cancel": _cancel,
    "registrations": _registrations,
    "payments": _registration_command(
        "payments", {"amount": USD, "provider": "manual", "reference": "bank-1"}, 200, paid=False),
    "confirm": _registration_command("confirm", None, 200, paid=False),
    "reject": _registration_command("reject", {"reason": "duplicate"}, 200, paid=True),
    "resend-confirmation": _registration_command("resend-confirmation", None, 202, paid=True),
    "refunds": _registration_command("refunds", {"amount": USD, "reference": "re-1"}, 201, paid=True),
    "tokens": _tokens,
    "checkout retry": _checkout,
}


@dataclass
class Outcome:
    """What one command showed in one crash round."""

    request: Request
    key: str
    committed_at_kill: int  # its events (or tokens) in the database when the server died
    retry: requests.Response
    again: requests.Response  # the same request once more, after the retry
    topics: Counter[str]  # events of its aggregates since the round started
    reference_topics: Counter[str]  # the same command run once, uncrashed, on a twin
    live_tokens: int = 0
    answered_before_kill: int | None = None  # the status, if the crash came too late for it


@pytest.fixture(scope="module")
def world(pg_server: TestServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("idem-crash")
    url = pg_server.new_database("crash")
    stripe = StripeContractServer()
    stripe.start()
    ledger = bootstrap(make_settings(tmp, LEDGER_PUBLIC_URL=PUBLIC_URL), url=url, pool_size=4)
    server = ServerProcess(
        url, tmp / "data", tmp / "serve.log", LEDGER_PUBLIC_URL=PUBLIC_URL,
        LEDGER_STRIPE_API_BASE=stripe.base_url,
        # This test sets up many registrations from one address; limits are tested elsewhere.
        LEDGER_RATE_LIMIT_REGISTRATION="off", LEDGER_RATE_LIMIT_CHECKOUT="off",
    )
    server.start()
    admin = {"Authorization": "Bearer " + api_tokens.create_token(ledger.db, role="admin")}
    w = World(ledger, server, stripe, admin, ledger.store.recorder.events_table_name)  # type: ignore[attr-defined]
    _, stripe_org = w.org("stripe")
    w.stripe_event = w.event(stripe_org, "stripe")
    try:
        yield w
    finally:
        server.kill()
        stripe.stop()
        ledger.close()


def _position(conn: psycopg.Connection[Any], w: World) -> int:
    row = conn.execute(f'SELECT coalesce(max(notification_id), 0) FROM "{w.events_table}"').fetchone()
    return int(row[0]) if row else 0


def _topics(
    conn: psycopg.Connection[Any], w: World, after: int, owned: list[str], until: int | None = None
) -> Counter[str]:
    rows = conn.execute(
        f'SELECT topic FROM "{w.events_table}" WHERE notification_id > %s AND notification_id <= %s '
        "AND originator_id::text = ANY(%s)",
        (after, until if until is not None else 2**62, owned),
    ).fetchall()
    return Counter(str(topic).rsplit(".", 1)[-1] for (topic,) in rows)


def _live_tokens(conn: psycopg.Connection[Any], label: str) -> int:
    row = conn.execute("SELECT count(*) FROM api_tokens WHERE label = %s AND revoked_at IS NULL", (label,)).fetchone()
    return int(row[0]) if row else 0


def _send(w: World, req: Request, key: str, timeout: float = 30) -> requests.Response:
    return w.call(req.method, req.path, req.body, {**req.headers, "Idempotency-Key": key}, timeout=timeout)


def _created_id(req: Request, response: requests.Response) -> None:
    """Creating commands own what they created (read from the answer)."""
    if req.path in ("/v1/organizers", "/v1/events") or req.path.endswith("/registrations"):
        try:
            req.owned.append(str(response.json()["id"]))
        except (ValueError, KeyError):
            pass


def _waiting_on_locks(conn: psycopg.Connection[Any], advisory: bool) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        + (" AND wait_event = 'advisory'" if advisory else "")
    ).fetchone()
    return int(row[0]) if row else 0


def _crash_round(w: World, point: str) -> dict[str, Outcome]:
    url = w.ledger.database_url
    with psycopg.connect(url, autocommit=True) as conn:
        twins = {name: (build(w), build(w)) for name, build in COMMANDS.items()}
        # The uncrashed reference run, one command after another.
        reference: dict[str, Counter[str]] = {}
        for name, (_, ref) in twins.items():
            before = _position(conn, w)
            r = _send(w, ref, uuid.uuid4().hex)
            assert r.status_code == ref.expect, (name, r.status_code, r.text)
            _created_id(ref, r)
            reference[name] = _topics(conn, w, before, ref.owned)
        start = _position(conn, w)
        keys = {name: f"{point}-{name}-{uuid.uuid4().hex[:8]}" for name in COMMANDS}

        holder = psycopg.connect(url, autocommit=True)
        try:
            if point == "before_commit":
                holder.autocommit = False
                holder.execute(f'LOCK TABLE "{w.events_table}" IN EXCLUSIVE MODE')
                holder.execute("LOCK TABLE api_tokens IN EXCLUSIVE MODE")
            else:
                conn.execute(
                    # Without lock_timeout: the server waits here until it is killed.
                    "CREATE OR REPLACE FUNCTION test_hold_complete() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN PERFORM set_config('lock_timeout', '0', true); "
                    f"PERFORM pg_advisory_xact_lock_shared({HOLD_COMPLETE}); RETURN NEW; END $$"
                )
                conn.execute(
                    # Completing a stored answer (a token's key stores none: its
                    # commit is its completion, see the module docstring).
                    "CREATE TRIGGER test_hold_complete BEFORE UPDATE ON idempotency_keys FOR EACH ROW "
                    "WHEN (NEW.state = 'done' AND OLD.state = 'in_progress' AND NEW.body IS NOT NULL) "
                    "EXECUTE FUNCTION test_hold_complete()"
                )
                holder.execute("SELECT pg_advisory_lock(%s)", (HOLD_COMPLETE,))
            pool = ThreadPoolExecutor(len(COMMANDS))
            fired = time.monotonic()
            futures = {name: pool.submit(_send, w, twins[name][0], keys[name], 20) for name in COMMANDS}
            keyed = [k for name, k in keys.items() if name != "tokens"]
            if point == "before_commit":
                _wait(lambda: _claims(conn, keyed) == len(keyed), 15)
                _wait(lambda: _waiting_on_locks(conn, advisory=False) >= 1, 15)
                time.sleep(0.5)  # the claimed commands reach their write (reads are not blocked)
            else:
                _wait(lambda: _waiting_on_locks(conn, advisory=True) >= len(keyed), 15)
                _wait(lambda: futures["tokens"].done(), 15)  # its answer is "lost" with the crash
            blocked_for = time.monotonic() - fired
            w.server.kill()
            pool.shutdown(wait=True)
            answered = {name: _status(future) for name, future in futures.items()}
            print(f"\n{point}: killed {blocked_for:.1f}s after sending", end="")
            killed_at = _position(conn, w)
            tokens_at_kill = _live_tokens(conn, twins["tokens"][0].label)
        finally:
            holder.close()
            conn.execute("DROP TRIGGER IF EXISTS test_hold_complete ON idempotency_keys")
        # The client retries a minute later: the crashed claims are stale by then.
        conn.execute("UPDATE idempotency_keys SET created_at = created_at - interval '2 minutes' "
                      "WHERE state = 'in_progress'")
        w.server.start()
        outcomes: dict[str, Outcome] = {}
        for name, (req, _) in twins.items():
            retry = _send(w, req, keys[name])
            _created_id(req, retry)
            again = _send(w, req, keys[name])
            at_kill = tokens_at_kill if name == "tokens" else sum(
                _topics(conn, w, start, req.owned, until=killed_at).values())
            outcomes[name] = Outcome(
                req, keys[name], at_kill, retry, again,
                _topics(conn, w, start, req.owned), reference[name],
                live_tokens=_live_tokens(conn, req.label) if req.label else 0,
                answered_before_kill=answered[name],
            )
        return outcomes


def _status(future: Future[requests.Response]) -> int | None:
    try:
        return future.result().status_code
    except requests.RequestException:
        return None  # the connection died with the server


def _claims(conn: psycopg.Connection[Any], keys: list[str]) -> int:
    row = conn.execute("SELECT count(*) FROM idempotency_keys WHERE key = ANY(%s)", (keys,)).fetchone()
    return int(row[0]) if row else 0


def _wait(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return  # asserted per command afterwards
        time.sleep(0.05)


@pytest.fixture(scope="module", params=POINTS)
def crash_round(request: pytest.FixtureRequest, world: World) -> dict[str, Outcome]:
    started = time.monotonic()
    outcomes = _crash_round(world, request.param)
    print(f"\n{request.param}: {len(outcomes)} commands, one kill -9, {time.monotonic() - started:.1f}s")
    return outcomes


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_retry_after_a_crash_answers_2xx_and_records_the_command_once(
    crash_round: dict[str, Outcome], command: str, request: pytest.FixtureRequest
) -> None:
    o = crash_round[command]
    point = request.node.callspec.params["crash_round"]
    if not (point == "after_commit" and command == "tokens"):
        assert o.answered_before_kill is None, "the request was still held at its crash point when killed"
    if point == "before_commit":
        assert o.committed_at_kill == 0, "nothing may be committed while the write waits for its lock"
    elif command != "tokens":
        assert o.committed_at_kill > 0, "the command's events were committed before the crash"
    assert o.retry.status_code == o.request.expect, (o.retry.status_code, o.retry.text)
    if command == "tokens":
        # The answer (a secret) is never stored: the retry issues a token again
        # and revokes the one issued under this key before, which nobody saw.
        assert o.again.status_code == 201
        assert o.retry.json()["token"] != o.again.json()["token"]
        assert o.live_tokens == 1, "one live token per Idempotency-Key"
        return
    assert o.topics == o.reference_topics, "exactly the events of one run"
    assert o.again.status_code == o.retry.status_code
    assert o.again.headers.get("Idempotent-Replayed") == "true"
    assert o.again.content == o.retry.content
