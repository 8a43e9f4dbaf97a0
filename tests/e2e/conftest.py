"""The Flask app wired to a real PostgreSQL, and tokens for each role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from ledger.container import Ledger
from tests.support.api_client import Org, Tokens, bearer


@pytest.fixture(scope="session")
def app(shared_ledger: Ledger) -> Any:
    return create_app(shared_ledger)


@pytest.fixture
def client(app: Any) -> Iterator[FlaskClient]:
    with app.test_client() as c:
        yield c


@pytest.fixture(scope="session")
def tokens(shared_ledger: Ledger) -> Tokens:
    return Tokens.issue(shared_ledger)


@pytest.fixture
def make_org(client: FlaskClient, tokens: Tokens) -> Any:
    """An organizer with a manual provider connected, and its token."""

    def make(country: str = "US", plan_size: int = 50, providers: tuple[str, ...] = ("manual",)) -> Org:
        r = client.post("/v1/organizers", json={"name": "Org", "country": country, "plan_size": plan_size},
                        headers=bearer(tokens.admin))
        assert r.status_code == 201, r.get_json()
        org_id = r.get_json()["id"]
        token = tokens.organizer(org_id)
        for provider in providers:
            r = client.post(f"/v1/organizers/{org_id}/providers", json={"provider": provider},
                            headers=bearer(token))
            assert r.status_code == 201, r.get_json()
        return Org(org_id, token, bearer(token))

    return make


@pytest.fixture
def make_event(client: FlaskClient, make_org: Any) -> Any:
    def make(org: Org | None = None, price: str = "49.00", currency: str = "USD", **extra: Any) -> dict[str, Any]:
        org = org or make_org()
        body = {"title": "Webinar", "starts_at": "2037-12-01T18:00:00+01:00", "permanent": False,
                "price": {"amount": price, "currency": currency}, "provider": "manual", **extra}
        r = client.post("/v1/events", json=body, headers=org.headers)
        assert r.status_code == 201, r.get_json()
        event: dict[str, Any] = r.get_json()
        event["_org"] = org
        return event

    return make
