"""Issue 13 item 11: no event, session or reschedule in the past (R13).

The first release accepted a 2020 date and mailed every participant a date
that had gone.  The ledger's clock (``ledger.clock``) decides what is past;
the answer is a 422 problem with the stable code ``starts_at_in_past``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient

from tests.support.api_client import Org

FUTURE = "2037-12-01T18:00:00+01:00"


def _body(**extra: Any) -> dict[str, Any]:
    return {"title": "Webinar", "permanent": False, "price": {"amount": "49.00", "currency": "USD"},
            "provider": "manual", **extra}


def _refused(r: Any, field: str) -> None:
    assert r.status_code == 422, r.get_json()
    problem = r.get_json()
    assert r.mimetype == "application/problem+json"
    assert problem["code"] == "starts_at_in_past"
    assert list(problem["errors"]) == [field]


def test_an_event_starting_in_the_past_is_refused(client: FlaskClient, make_org: Any) -> None:
    org: Org = make_org()
    _refused(client.post("/v1/events", json=_body(starts_at="2020-05-04T18:00:00+02:00"), headers=org.headers),
             "starts_at")
    just_gone = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    _refused(client.post("/v1/events", json=_body(starts_at=just_gone), headers=org.headers), "starts_at")
    # One past session among future ones refuses the whole event, permanent or not.
    for permanent in (False, True):
        sessions = [{"starts_at": FUTURE}, {"starts_at": "2026-10-20T16:00:00+00:00"}]
        r = client.post("/v1/events", json=_body(sessions=sessions, permanent=permanent), headers=org.headers)
        _refused(r, "sessions")
    ok = client.post("/v1/events", json=_body(starts_at=FUTURE), headers=org.headers)
    assert ok.status_code == 201, ok.get_json()


def test_rescheduling_into_the_past_is_refused_and_changes_nothing(client: FlaskClient, make_event: Any) -> None:
    event = make_event()
    headers = event["_org"].headers
    url = f"/v1/events/{event['id']}"
    for when in ("2020-01-01T10:00:00+00:00", (datetime.now(UTC) - timedelta(seconds=5)).isoformat()):
        _refused(client.post(f"{url}/reschedule", json={"starts_at": when}, headers=headers), "starts_at")
    after = client.get(url, headers=headers).get_json()
    assert (after["version"], after["starts_at"]) == (event["version"], event["starts_at"])
    r = client.post(f"{url}/reschedule", json={"starts_at": "2037-12-08T18:00:00+01:00"}, headers=headers)
    assert r.status_code == 200, r.get_json()
