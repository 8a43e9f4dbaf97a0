"""Events stored by the first release (class version 1, fee policy ``fee-v1``)
still load and keep their meaning: their fee lines stay as they were stored,
the report says which policy each line used, and the money they left owed back
is shown (R17, R18).  New facts on the same registrations are ``fee-v2``."""

from __future__ import annotations

import json
import uuid
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from ledger import event_log
from ledger.container import Ledger
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.money import Money
from projections import fee_report, who_paid_query
from projections.rebuild import rebuild
from tests.integration.projections.history import project, snapshot
from tests.support.relay import validators

#: Fields each event type gained in class version 2 (what a v1 stored event lacks).
ADDED_IN_V2: dict[type[Any], tuple[str, ...]] = {
    Registration.PaymentRecorded: ("method",),
    Registration.RefundRecorded: ("ends_access", "fee_policy"),
    Registration.Rejected: ("fee_reversed_minor", "fee_policy"),
    Registration.Cancelled: ("fee_reversed_minor", "fee_policy"),
}


def store_as_v1(ledger: Ledger, events: list[Any]) -> None:
    """Write ``events`` the way the first release stored them: no
    ``class_version`` in the state, without the fields added since."""
    stored = []
    for event in events:
        state = dict(vars(event))
        originator_id, version = state.pop("originator_id"), state.pop("originator_version")
        for name in ADDED_IN_V2.get(type(event), ()):
            state.pop(name)
        stored.append(StoredEvent(originator_id=originator_id, originator_version=version,
                                  topic=get_topic(type(event)), state=ledger.store.mapper.transcoder.encode(state)))
    ledger.store.recorder.insert_events(stored)


def first_release_history(ledger: Ledger) -> tuple[str, str, list[str]]:
    """An event of the first release: two paid participants and one who had not
    paid yet; the event was cancelled; a payment arrived after the cancel; one
    refund of 10.00 closed a registration (every v1 refund did).  Fees were 5%
    of every payment (fee-v1), reversed only by refunds."""
    org = Organizer.register(id=uuid.uuid4(), name="Old", country="US", plan_size=50)
    org.connect_provider("c1", "manual", {})
    event = PaidEvent.create(
        id=uuid.uuid4(), organizer_id=str(org.id), title="Old", description="", timezone="UTC", permanent=False,
        sessions=[{"id": "s1", "starts_at": "2037-12-01T10:00:00+00:00"}], price_minor=4900, currency="USD",
        provider="manual", connection_id="c1",
    )
    regs = []
    for n in range(3):
        reg = Registration.register(
            id=uuid.uuid4(), event_id=str(event.id), organizer_id=str(org.id), name=f"P{n}",
            email=f"p{n}@x.org", fields={}, language=None, price_minor=4900, currency="USD", provider="manual",
        )
        event._seat_held(registration_id=str(reg.id), expires_at="2099-01-01T00:00:00+00:00")
        regs.append(reg)
    paid, refunded, late = regs
    for reg in (paid, refunded):
        reg._payment_recorded(amount_minor=4900, currency="USD", provider="manual", method=None,
                              reference=f"v1-{reg.id}", fee_minor=245, fee_policy="fee-v1", seat_granted=True)
        event._seat_sold(registration_id=str(reg.id))
    refunded._refund_recorded(amount_minor=1000, currency="USD", reference="v1-refund", ends_access=True,
                              fee_reversed_minor=50, fee_policy="fee-v1")
    event._seat_released(registration_id=str(refunded.id), reason="refunded")
    event._cancelled(reason="called off")
    for reg in (paid, late):
        reg._cancelled(reason="called off", fee_reversed_minor=0, fee_policy="fee-v1")
    late._payment_recorded(amount_minor=4900, currency="USD", provider="wire", method=None, reference="v1-late",
                           fee_minor=245, fee_policy="fee-v1", seat_granted=False)  # v1 took any provider text
    store_as_v1(ledger, [*org.collect_events(), *event.collect_events(),
                         *(e for reg in regs for e in reg.collect_events())])
    return str(org.id), str(event.id), [str(r.id) for r in regs]


def test_first_release_events_load_keep_their_fee_lines_and_show_what_is_owed(fresh_ledger: Ledger) -> None:
    org_id, event_id, (paid, refunded, late) = first_release_history(fresh_ledger)
    service = fresh_ledger.service
    figures = {rid: (r.status, r.refund_due_minor, r.fee_outstanding_minor)
               for rid in (paid, refunded, late) for r in [service.registration(rid)]}
    assert figures == {paid: ("refund_due", 4900, 245), refunded: ("refund_due", 3900, 195),
                       late: ("refund_due", 4900, 245)}  # fee-v1 figures, as stored
    assert service.registration(refunded).refunds[0]["ends_access"] is True
    assert [(p["provider"], p["method"]) for p in service.registration(late).payments] == [("manual", "wire")]
    checks = validators()  # what Kafka consumers get for old events matches today's schemas
    for item in event_log.read(fresh_ledger.store, after=0, limit=1000):
        checks[item.type].validate(json.loads(json.dumps(item.as_dict())))

    project(fresh_ledger)
    (old,) = fee_report.query(fresh_ledger.db, organizer=org_id).items
    assert (old.fee_policy, old.gross_minor, old.refunded_minor, old.fee_charged_minor, old.fee_reversed_minor,
            old.refund_due_minor, old.tickets) == ("fee-v1", 14700, 1000, 735, 50, 13700, 2)

    # A refund recorded now is a fee-v2 fact: money owed back carries no fee, so
    # the fee-v1 charge on it is given back whole; the fee-v1 line stays as it was.
    service.record_refund(paid, amount=Money(4900, "USD"), reference="now")
    service.record_refund(late, amount=Money(1000, "USD"), reference="now-part")
    project(fresh_ledger)
    lines = {i.fee_policy: i for i in fee_report.query(fresh_ledger.db, organizer=org_id).items}
    assert lines["fee-v1"] == old
    new = lines["fee-v2"]
    assert (new.refunded_minor, new.fee_reversed_minor, new.refund_due_minor, new.gross_minor) == (
        5900, 245 + 245, -5900, 0)
    (total,) = fee_report.query(fresh_ledger.db, organizer=org_id).totals
    assert (total.refund_due_minor, total.fee_minor) == (3900 + 3900, 195)  # the v1 refund's remainder
    money = who_paid_query.event_money(fresh_ledger, event_id, "USD")
    assert (money.gross_minor, money.refunded_minor, money.refund_due_minor, money.fee_minor) == (
        14700, 6900, 7800, 195)

    before = snapshot(fresh_ledger), fee_report.query(fresh_ledger.db, organizer=org_id)
    rebuild(fresh_ledger)
    assert (snapshot(fresh_ledger), fee_report.query(fresh_ledger.db, organizer=org_id)) == before
