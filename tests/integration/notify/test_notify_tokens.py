"""Access tokens as the notify worker issues them: valid for their event, kept
only as a hash, the same on a resend, revoked on rejection, cancellation or a
refund that closes the registration."""

from __future__ import annotations

from ledger import access_tokens
from ledger.event_log import head
from ledger.money import Money
from tests.support.notify_world import World, running
from tests.support.smtp import SmtpTestServer
from tests.support.waiting import wait_until


def caught_up(world: World) -> None:
    wait_until(lambda: world.position() == head(world.ledger.store), what="the planner to catch up")


def find(world: World, token: str) -> access_tokens.Access | None:
    with world.ledger.db.transaction() as conn:
        return access_tokens.find(conn, token)


def test_token_opens_its_event_and_is_never_stored_in_clear(world: World, smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org, permanent=True, starts=("2037-12-01T18:00:00+00:00", "2037-12-08T18:00:00+00:00"))
    rid = world.register(ev, "ann@example.com")
    with running(world.ledger):
        world.pay(rid)
        world.resend(rid)
        smtp_server.wait_for(2)
        caught_up(world)
    token = world.token(rid)
    assert find(world, token) == access_tokens.Access(rid, ev)
    assert len(token) == 43 and token != world.token(world.register(ev, "bob@example.com"))
    with world.ledger.db.transaction() as conn:
        stored = conn.execute(
            "SELECT (SELECT string_agg(t::text, '|') FROM access_tokens t)"
            " || (SELECT string_agg(o::text, '|') FROM notify_outbox o)").fetchone()
        events = conn.execute("SELECT state FROM ledger_events").fetchall()
        hashes = conn.execute("SELECT count(*) FROM access_tokens WHERE registration_id = %s",
                              (rid,)).fetchone()
    assert stored is not None and token not in stored[0]
    assert access_tokens.hash_token(token) in stored[0]
    assert all(token.encode() not in bytes(state) for (state,) in events)
    assert hashes == (1,)  # the resend re-derived the same token: same access, no second row


def test_rejection_revokes(world: World, smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org)
    rid = world.register(ev, "ann@example.com")
    other = world.register(ev, "bob@example.com")
    with running(world.ledger):
        world.pay(rid)
        world.pay(other)
        caught_up(world)
        assert find(world, world.token(rid)) is not None
        world.reject(rid)
        caught_up(world)
    assert find(world, world.token(rid)) is None
    assert find(world, world.token(other)) is not None
    with world.ledger.db.transaction() as conn:
        reason = conn.execute("SELECT revoked_reason FROM access_tokens WHERE registration_id = %s",
                              (rid,)).fetchone()
    assert reason == ("rejected",)


def test_event_cancellation_revokes_every_token_of_the_event(world: World,
                                                             smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org)
    other_ev = world.event(org, title="Another")
    rids = [world.register(ev, f"p{i}@example.com") for i in range(3)]
    elsewhere = world.register(other_ev, "z@example.com")
    with running(world.ledger):
        for rid in [*rids, elsewhere]:
            world.pay(rid)
        world.cancel(ev)
        caught_up(world)
    assert all(find(world, world.token(rid)) is None for rid in rids)
    assert find(world, world.token(elsewhere)) == access_tokens.Access(elsewhere, other_ev)


def test_a_refund_that_gives_the_ticket_back_revokes(world: World, smtp_server: SmtpTestServer) -> None:
    org = world.organizer()
    ev = world.event(org, price="10.00")
    rid = world.register(ev, "ann@example.com")
    with running(world.ledger):
        world.pay(rid)
        caught_up(world)
        assert find(world, world.token(rid)) is not None
        world.ledger.service.record_refund(rid, amount=Money.parse("10.00", "USD"), reference="re-1")
        caught_up(world)
    assert find(world, world.token(rid)) is None


def test_malformed_or_foreign_tokens_are_unknown(world: World) -> None:
    assert find(world, "") is None
    assert find(world, "a" * 43) is None
    assert find(world, "' OR 1=1 --") is None
    assert find(world, access_tokens.derive_token(b"\x22" * 32, "any")) is None
    assert access_tokens.derive_token(b"\x11" * 32, "r1") == access_tokens.derive_token(b"\x11" * 32, "r1")
    assert access_tokens.derive_token(b"\x11" * 32, "r1") != access_tokens.derive_token(b"\x12" * 32, "r1")
