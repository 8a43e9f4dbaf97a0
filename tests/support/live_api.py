"""The real app on a loopback port, called over real HTTP from chosen client
addresses -- for tests where "which client" matters (rate limits) or where
the test client would hide what the wire does (cookies, headers).

Linux routes all of 127.0.0.0/8 to the loopback interface, so binding the
client socket to 127.0.0.2 makes a second, distinct client of the same
machine: the server sees another peer address, exactly as with two hosts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from werkzeug.serving import make_server

from api.app import create_app
from ledger.container import Ledger
from tests.support.api_client import Tokens, bearer

TIMEOUT = 15.0


class _FromAddress(HTTPAdapter):
    def __init__(self, address: str) -> None:
        self._address = address
        super().__init__(pool_maxsize=32)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._address, 0)
        super().init_poolmanager(*args, **kwargs)


def client_from(address: str) -> requests.Session:
    """A session whose connections leave from ``address`` (e.g. 127.0.0.2)."""
    session = requests.Session()
    session.mount("http://", _FromAddress(address))
    return session


@dataclass
class LiveApi:
    url: str
    ledger: Ledger
    tokens: Tokens

    def admin(self) -> dict[str, str]:
        return bearer(self.tokens.admin)

    def organizer(self, *, country: str = "US", plan_size: int = 50) -> tuple[str, dict[str, str]]:
        """A new organizer (through the API) and its headers."""
        r = requests.post(f"{self.url}/v1/organizers", json={"name": "Org", "country": country, "plan_size": plan_size},
                          headers=self.admin(), timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        org_id = r.json()["id"]
        return org_id, bearer(self.tokens.organizer(org_id))

    def event(self, headers: dict[str, str], org_id: str, provider: str, creds: dict[str, str] | None = None,
              currency: str = "USD") -> tuple[dict[str, Any], str]:
        """Connect ``provider`` and create an event paid through it; (event, connection id)."""
        r = requests.post(f"{self.url}/v1/organizers/{org_id}/providers", json={"provider": provider, **(creds or {})},
                          headers=headers, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        connection_id = str(r.json()["id"])
        body: dict[str, Any] = {"title": "Webinar", "starts_at": "2038-12-01T18:00:00+01:00", "permanent": False,
                "price": {"amount": "49.00", "currency": currency}, "provider": provider}
        r = requests.post(f"{self.url}/v1/events", json=body, headers=headers, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        return r.json(), connection_id

    def event_now(self, event_id: str, headers: dict[str, str]) -> dict[str, Any]:
        r = requests.get(f"{self.url}/v1/events/{event_id}", headers=headers, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@contextmanager
def serve(ledger: Ledger) -> Iterator[LiveApi]:
    """``create_app(ledger)`` served on a free loopback port until the block ends."""
    server = make_server("127.0.0.1", 0, create_app(ledger), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-api", daemon=True)
    thread.start()
    try:
        yield LiveApi(f"http://127.0.0.1:{server.server_port}", ledger, Tokens.issue(ledger))
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()
