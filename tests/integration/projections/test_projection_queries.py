"""Reading the views: who-paid pages and filters, tenant isolation, CSV, the
finance event log, and the fast decoder agreeing with the store's mapper."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest
from eventsourcing.persistence import Notification

from ledger import event_log
from ledger.container import Ledger
from ledger.domain.registration import Registration
from ledger.errors import LedgerError, NotFound, ValidationFailed
from ledger.money import Money
from ledger.scope import ANYONE, Scope
from projections import audit_log, who_paid_query
from projections.batch import RELEVANT_TOPICS, read_batch
from projections.decoding import EventDecoder
from projections.paging import InvalidCursor, encode_cursor
from tests.integration.projections.history import organizer_with_event, paid_registration, project


@pytest.fixture
def event_of_seven(shared_ledger: Ledger) -> tuple[str, str, list[str]]:
    org_id, event_id = organizer_with_event(shared_ledger, price=Money(2500, "EUR"))
    regs = [paid_registration(shared_ledger, event_id, n, pay=n % 2 == 0) for n in range(7)]
    shared_ledger.service.reject(regs[1], reason="spam", scope=ANYONE)
    project(shared_ledger)
    return org_id, event_id, regs


def test_pages_follow_registration_order_without_gaps_or_repeats(
    shared_ledger: Ledger, event_of_seven: tuple[str, str, list[str]]
) -> None:
    org_id, event_id, regs = event_of_seven
    seen, after, pages = [], None, 0
    while True:
        page = who_paid_query.page(shared_ledger, event_id, scope=Scope(org_id), after=after, limit="3")
        seen += [i["registration_id"] for i in page.items]
        pages += 1
        if page.next is None:
            break
        after = page.next
    assert seen == regs and pages == 3
    paid = who_paid_query.page(shared_ledger, event_id, scope=ANYONE, status="paid")
    assert [i["registration_id"] for i in paid.items] == regs[0::2] and paid.next is None
    both = who_paid_query.page(shared_ledger, event_id, scope=ANYONE, status="rejected,awaiting_payment")
    assert {i["status"] for i in both.items} == {"rejected", "awaiting_payment"} and len(both.items) == 3
    item = paid.items[0]
    assert item["paid"] == {"amount": "25.00", "currency": "EUR"}
    assert item["fee"] == {"amount": "1.25", "currency": "EUR"}
    assert item["refund_due"] == {"amount": "0.00", "currency": "EUR"}
    assert item["provider"] == "manual" and item["provider_reference"] == f"pay-{regs[0]}"
    assert item["registered_at"].endswith("+00:00") and item["paid_at"]
    json.dumps(paid.as_dict())  # JSON-ready as it is


def test_other_organizers_and_unknown_ids_are_not_found(
    shared_ledger: Ledger, event_of_seven: tuple[str, str, list[str]]
) -> None:
    _, event_id, _ = event_of_seven
    stranger, _ = organizer_with_event(shared_ledger)
    for scope, wanted in ((Scope(stranger), event_id), (ANYONE, str(uuid.uuid4())), (ANYONE, "not-an-id")):
        with pytest.raises(NotFound):
            who_paid_query.page(shared_ledger, wanted, scope=scope)
        with pytest.raises(NotFound):
            who_paid_query.csv_lines(shared_ledger, wanted, scope=scope)


def test_an_event_too_new_for_the_view_lists_empty(shared_ledger: Ledger) -> None:
    org_id, event_id = organizer_with_event(shared_ledger)  # not projected yet
    page = who_paid_query.page(shared_ledger, event_id, scope=Scope(org_id))
    assert page.items == [] and page.next is None


@pytest.mark.parametrize(("kwargs", "error"), [
    ({"limit": 0}, ValidationFailed), ({"limit": "501"}, ValidationFailed), ({"limit": "ten"}, ValidationFailed),
    ({"limit": "-1"}, ValidationFailed), ({"after": "%%%"}, InvalidCursor), ({"after": "bm9wZQ"}, InvalidCursor),
    ({"after": encode_cursor("x")}, InvalidCursor), ({"after": encode_cursor(1, 2)}, InvalidCursor),
    ({"status": "paid,unknown"}, ValidationFailed),
])
def test_bad_list_input_is_a_precise_refusal(
    shared_ledger: Ledger, event_of_seven: tuple[str, str, list[str]], kwargs: dict[str, str],
    error: type[LedgerError],
) -> None:
    with pytest.raises(error) as refused:
        who_paid_query.page(shared_ledger, event_of_seven[1], scope=ANYONE, **kwargs)
    assert refused.value.status == 422 and refused.value.errors()


def test_csv_parses_back_and_defuses_formulas(shared_ledger: Ledger) -> None:
    org_id, event_id = organizer_with_event(shared_ledger, price=Money(1000, "USD"))
    service = shared_ledger.service
    reg = service.register_participant(event_id, name='=HYPERLINK("http://x","y")', email="a,b@example.org",
                                       fields={})
    service.record_payment(str(reg.id), amount=Money(1000, "USD"), provider="manual", reference="+cash")
    paid_registration(shared_ledger, event_id, 2, pay=False)
    project(shared_ledger)
    text = "".join(who_paid_query.csv_lines(shared_ledger, event_id, scope=Scope(org_id), chunk=1))
    *rows, total = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(who_paid_query.CSV_COLUMNS)
    assert [r["status"] for r in rows] == ["paid", "awaiting_payment"]
    assert (total["registration_id"], total["name"], total["paid"], total["refund_due"], total["fee"]) == (
        "total", "2 participants", "10.00", "0.00", "0.50")  # R17: the totals line
    assert rows[0]["name"] == "'=HYPERLINK(\"http://x\",\"y\")" and rows[0]["email"] == "a,b@example.org"
    assert (rows[0]["paid"], rows[0]["fee"], rows[0]["currency"]) == ("10.00", "0.50", "USD")
    assert rows[0]["provider_reference"] == "'+cash"
    only_unpaid = "".join(who_paid_query.csv_lines(shared_ledger, event_id, scope=ANYONE,
                                                   status="awaiting_payment"))
    assert [r["registration_id"] != "total" for r in csv.DictReader(io.StringIO(only_unpaid))] == [True, False]


def test_event_log_pages_every_event_in_order(fresh_ledger: Ledger) -> None:
    org_id, event_id = organizer_with_event(fresh_ledger)
    for n in range(4):
        paid_registration(fresh_ledger, event_id, n)
    head = event_log.head(fresh_ledger.store)
    items, after = [], None
    while True:
        page = audit_log.page(fresh_ledger, after=after, limit=5)
        items += page.items
        if page.next is None:
            break
        after = page.next
    assert [i["position"] for i in items] == list(range(1, head + 1))
    payment = next(i for i in items if i["type"] == "PaymentRecorded")
    assert set(payment) >= {"position", "id", "type", "aggregate_id", "aggregate_version", "occurred_at", "data",
                            "organizer_id", "schema_version"}
    assert payment["organizer_id"] == org_id and payment["data"]["fee_minor"] == 245
    assert payment["id"] == event_log.event_id(payment["aggregate_id"], payment["aggregate_version"])
    connected = next(i for i in items if i["type"] == "ProviderConnected")
    assert connected["data"]["provider"] == "manual"
    assert audit_log.page(fresh_ledger, after=str(head)).items == []
    for bad in ("-1", "x", "1.5"):
        with pytest.raises(ValidationFailed):
            audit_log.page(fresh_ledger, after=bad)


def test_redaction_hides_credential_fields_but_keeps_masked_summaries() -> None:
    data = {"provider": "stripe", "masked": {"api_key": "sk_…1234"}, "api_key": "sk_live_x",
            "nested": [{"client_secret": "s", "ok": 1}]}
    assert audit_log.redact(data) == {"provider": "stripe", "masked": {"api_key": "sk_…1234"},
                                      "api_key": "[redacted]", "nested": [{"client_secret": "[redacted]", "ok": 1}]}


def test_fast_decoder_builds_what_the_mapper_builds(fresh_ledger: Ledger) -> None:
    _, event_id = organizer_with_event(fresh_ledger)
    rid = paid_registration(fresh_ledger, event_id, 1)
    service = fresh_ledger.service
    service.confirm(rid, scope=ANYONE)
    service.record_refund(rid, amount=Money(100, "USD"), reference="r")
    mapper = fresh_ledger.store.mapper
    decoder = EventDecoder(mapper)
    notifications = list(fresh_ledger.store.recorder.select_notifications(start=1, limit=1000))
    # A version-1 ParticipantRegistered as stored before ``language`` existed: both must upcast it.
    v2 = next(n for n in notifications if n.topic.endswith("Registration.Registered"))
    v1_state = json.loads(v2.state)
    del v1_state["class_version"], v1_state["language"]
    notifications.append(Notification(id=10**6, originator_id=v2.originator_id, originator_version=1,
                                      topic=v2.topic, state=json.dumps(v1_state).encode()))
    for n in notifications:
        expected = mapper.to_domain_event(n)
        got = decoder.decode(n, type(expected))
        assert type(got) is type(expected) and got.__dict__ == expected.__dict__, n.topic
    upcast = decoder.decode(notifications[-1], Registration.Registered)
    assert upcast.language is None


def test_the_binary_reader_returns_what_the_library_returns(fresh_ledger: Ledger) -> None:
    _, event_id = organizer_with_event(fresh_ledger)
    for n in range(3):
        paid_registration(fresh_ledger, event_id, n)
    recorder = fresh_ledger.store.recorder
    expected = recorder.select_notifications(start=2, limit=5, topics=sorted(RELEVANT_TOPICS),
                                             inclusive_of_start=False)
    batch = read_batch(recorder, 2, 5)
    assert list(batch.notifications) == list(expected) and batch.reached == expected[-1].id
    everything = read_batch(recorder, 0, 10_000)
    assert everything.reached == event_log.head(fresh_ledger.store)  # irrelevant tail counted as read
