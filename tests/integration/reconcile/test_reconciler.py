"""The reconcile worker against real PostgreSQL and the provider contract
servers: checkouts the providers never told us about get settled."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger import connections
from ledger.container import Ledger
from ledger.domain.registration import Registration
from ledger.money import Money
from ledger.providers.registry import ProviderEndpoints, mask
from tests.contracts.paypal_contract import PaypalContractServer
from tests.contracts.payu_contract import PayuContractServer
from tests.contracts.stripe_contract import StripeContractServer
from workers import reconcile
from workers.reconcile import Reconciler


@pytest.fixture
def ledger(
    fresh_ledger: Ledger,
    stripe_server: StripeContractServer,
    payu_server: PayuContractServer,
    paypal_server: PaypalContractServer,
) -> Iterator[Ledger]:
    fresh_ledger.providers.point_at(
        ProviderEndpoints(
            stripe_api_base=stripe_server.base_url,
            payu_api_base=payu_server.base_url,
            paypal_api_base=paypal_server.base_url,
            timeout_seconds=1.0,
        ),
    )
    yield fresh_ledger


def _reconciler(ledger: Ledger, **overrides: Any) -> Reconciler:
    settings: dict[str, Any] = {
        "first_delay": timedelta(0),
        "min_interval": timedelta(seconds=30),
        "retry_min_age": timedelta(0),
        "idle_seconds": 0.05,
        **overrides,
    }
    return Reconciler(access=ledger.providers, intake=ledger.intake, **settings)


def _checkout(ledger: Ledger, provider: str, server: Any, currency: str = "USD") -> Registration:
    """An organizer, a connection, an event and one registration with its checkout open."""
    service = ledger.service
    organizer = service.register_organizer(name="Org", country="PL" if provider == "payu" else "US", plan_size=10)
    oid = str(organizer.id)
    creds = server.credentials()
    service.connect_provider(
        oid,
        provider=provider,
        masked=mask(provider, creds),
        store_secrets=lambda cid: connections.store_secrets(
            ledger.db, ledger.secret_box, connection_id=cid, organizer_id=oid, creds=creds
        ),
    )
    event = service.create_event(
        organizer_id=oid,
        title="Webinar",
        description="",
        sessions=[datetime(2037, 12, 1, 17, tzinfo=UTC)],
        timezone="UTC",
        permanent=False,
        price=Money(4900, currency),
        provider=provider,
    )
    registration = service.register_participant(str(event.id), name="Ada", email="ada@example.test", fields={})
    registration, _ = ledger.checkout.start(registration)
    assert registration.checkout is not None
    return registration


def _settled(ledger: Ledger, registration_id: str) -> str | None:
    with ledger.db.transaction() as conn:
        row = conn.execute(
            "SELECT settled_as FROM provider_checkouts WHERE registration_id = %s", (registration_id,)
        ).fetchone()
    assert row is not None
    return row[0] if row[0] is None else str(row[0])


def test_a_paid_stripe_session_without_webhook_is_booked_once(
    ledger: Ledger, stripe_server: StripeContractServer
) -> None:
    registration = _checkout(ledger, "stripe", stripe_server)
    rid = str(registration.id)
    worker = _reconciler(ledger)
    assert worker.run_once().polled == 1  # still open: nothing to do, polled again later
    assert ledger.service.registration(rid).status == "awaiting_payment"
    assert worker.run_once().polled == 0  # backed off
    stripe_server.complete(registration.checkout["reference"])  # type: ignore[index]
    worker = _reconciler(ledger, min_interval=timedelta(0))
    with ledger.db.transaction() as conn:
        conn.execute("UPDATE provider_checkouts SET next_poll_at = now() WHERE registration_id = %s", (rid,))
    done = worker.run_once()
    assert (done.polled, done.applied) == (1, 1)
    got = ledger.service.registration(rid)
    assert (got.status, got.paid_minor) == ("paid", 4900)
    assert _settled(ledger, rid) == "paid"
    assert worker.run_once().polled == 0


def test_first_poll_waits_for_the_webhook(ledger: Ledger, stripe_server: StripeContractServer) -> None:
    _checkout(ledger, "stripe", stripe_server)
    assert _reconciler(ledger, first_delay=timedelta(minutes=2)).run_once().polled == 0


def test_an_approved_paypal_order_nobody_came_back_for_is_captured(
    ledger: Ledger, paypal_server: PaypalContractServer
) -> None:
    registration = _checkout(ledger, "paypal", paypal_server)
    paypal_server.approve(registration.checkout["reference"])  # type: ignore[index]
    assert _reconciler(ledger).run_once().applied == 1
    assert ledger.service.registration(str(registration.id)).status == "paid"
    assert len(paypal_server.captures) == 1


def test_a_cancelled_payu_order_releases_the_seat(ledger: Ledger, payu_server: PayuContractServer) -> None:
    registration = _checkout(ledger, "payu", payu_server, currency="PLN")
    payu_server.set_status(registration.checkout["reference"], "CANCELED")  # type: ignore[index]
    _reconciler(ledger).run_once()
    event = ledger.service.event(registration.event_id)
    assert str(registration.id) not in event.holds
    assert _settled(ledger, str(registration.id)) == "failed"


def test_a_fact_interrupted_by_a_crash_is_applied_on_the_next_pass(
    ledger: Ledger, stripe_server: StripeContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    registration = _checkout(ledger, "stripe", stripe_server)
    rid = str(registration.id)
    stripe_server.complete(registration.checkout["reference"])  # type: ignore[index]
    service = ledger.service

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("simulated crash while booking")

    monkeypatch.setattr(service, "record_payment", crash)
    _reconciler(ledger).run_once()  # the failure is logged, the pass goes on
    assert service.registration(rid).status == "awaiting_payment"
    monkeypatch.undo()
    done = _reconciler(ledger).run_once()  # the checkout is backed off; the claimed fact is retried
    assert (done.polled, done.retried) == (0, 1)
    assert service.registration(rid).status == "paid"


def test_checkouts_older_than_any_provider_keeps_them_are_abandoned(
    ledger: Ledger, stripe_server: StripeContractServer
) -> None:
    registration = _checkout(ledger, "stripe", stripe_server)
    assert _reconciler(ledger, give_up_after=timedelta(0)).run_once().polled == 0
    assert _settled(ledger, str(registration.id)) == "abandoned"


def test_the_worker_stops_promptly(ledger: Ledger, stripe_server: StripeContractServer) -> None:
    _checkout(ledger, "stripe", stripe_server)
    worker = reconcile.build(ledger)
    assert worker.name == "reconcile"
    worker.idle_seconds = 30.0  # it must not wait out its idle time once stopped
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    stop.set()
    thread.join(timeout=2.0)
    assert not thread.is_alive() and time.monotonic() - started < 1.0
