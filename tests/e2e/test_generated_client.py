"""A client nobody here wrote works (issue 14): ``openapi-python-client``
generates a Python package from the served ``/openapi.json``, which is then
imported and driven through one whole flow over HTTP -- organizer, provider
(manual), event, registration, payment, who paid, fee report -- and a refusal
read as problem+json (``code``, ``detail``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from ledger.container import Ledger
from projections.runner import ProjectionRunner
from tests.support.live_api import TIMEOUT, serve

PACKAGE = "ledger_generated_client"


def _generate(spec_url: str, where: Path) -> Any:
    spec = where / "openapi.json"
    spec.write_bytes(requests.get(spec_url, timeout=TIMEOUT).content)
    config = where / "config.yml"
    config.write_text(f"package_name_override: {PACKAGE}\npost_hooks: []\n")
    generator = Path(sys.executable).with_name("openapi-python-client")
    done = subprocess.run(
        [str(generator), "generate", "--path", str(spec), "--meta", "none", "--config", str(config),
         "--output-path", str(where / PACKAGE)],
        capture_output=True, text=True, timeout=180, env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Unable to" not in done.stdout + done.stderr, done.stdout + done.stderr  # nothing was skipped
    sys.path.insert(0, str(where))
    try:
        return importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(where))


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_drives_the_whole_flow(shared_ledger: Ledger, tmp_path: Path) -> None:
    with serve(shared_ledger) as live:
        client_pkg = _generate(f"{live.url}/openapi.json", tmp_path)
        m = _module("models")
        create_organizer = _module("api.organizers.create_organizer")
        create_token = _module("api.tokens.create_token")
        connect_provider = _module("api.organizers.connect_provider")
        create_event = _module("api.events.create_event")
        edit_event = _module("api.events.edit_event")
        create_registration = _module("api.registrations.create_registration")
        record_payment = _module("api.registrations.record_payment")
        list_participants = _module("api.participants.list_participants")
        get_fee_report = _module("api.reports.get_fee_report")
        out: list[str] = []

        admin = client_pkg.AuthenticatedClient(base_url=live.url, token=live.tokens.admin)
        organizer = create_organizer.sync(
            client=admin, body=m.OrganizerCreate(name="Generated Org", country="US", plan_size=50))
        assert isinstance(organizer, m.Organizer), organizer
        out.append(f"organizer {organizer.id} {organizer.country}")
        token = create_token.sync(client=admin, body=m.TokenCreate(
            role=m.TokenCreateRole.ORGANIZER, organizer_id=organizer.id))
        assert isinstance(token, m.Token), token
        org = client_pkg.AuthenticatedClient(base_url=live.url, token=token.token)

        connection = connect_provider.sync(
            organizer.id, client=org, body=m.ProviderConnect(provider=m.ProviderConnectProvider.MANUAL))
        assert isinstance(connection, m.Connection), connection
        out.append(f"provider {connection.provider.value} connected")

        event = create_event.sync(client=org, idempotency_key="gen-event-1", body=m.EventCreate(
            title="Generated webinar", price=m.Money(amount="49.00", currency="USD"),
            provider=m.EventCreateProvider.MANUAL, starts_at=dt.datetime(2038, 12, 1, 17, tzinfo=dt.UTC)))
        assert isinstance(event, m.EventCreated), event
        out.append(f"event {event.id} {event.status.value} {event.price.amount} {event.price.currency}")

        public = client_pkg.Client(base_url=live.url)
        registration = create_registration.sync(
            event.id, client=public, body=m.RegistrationCreate(name="Ada", email="ada@example.com"))
        assert isinstance(registration, m.RegistrationCreated), registration
        out.append(f"registration {registration.id} {registration.status.value}")

        paid = record_payment.sync(registration.id, client=org, body=m.Payment(
            amount=m.Money(amount="49.00", currency="USD"), reference="bank-1",
            provider=m.PaymentProvider.MANUAL, method="bank transfer"))
        assert isinstance(paid, m.Registration), paid
        out.append(f"payment recorded: {paid.status.value}")

        ProjectionRunner(shared_ledger).catch_up()  # who paid and the fee report are views
        participants = list_participants.sync(event.id, client=org)
        assert isinstance(participants, m.ParticipantPage), participants
        [who] = participants.items
        out.append(f"who paid: {who.name} {who.status.value} paid {who.paid.amount} {who.paid.currency}")
        assert who.paid.amount == "49.00"

        report = get_fee_report.sync(client=org)
        assert isinstance(report, m.FeeReport), report
        [total] = report.totals
        out.append(f"fee report: gross {total.gross} fee {total.fee} net {total.net} {total.currency}")
        assert total.gross == "49.00"

        refused = edit_event.sync_detailed(event.id, client=org, body=m.EventPatch.from_dict({"price": "1.00"}))
        problem = refused.parsed
        assert refused.status_code == 422 and isinstance(problem, m.Problem), refused
        assert refused.headers["content-type"] == "application/problem+json"
        assert problem.code == "price_immutable" and problem.detail
        out.append(f"refused: {refused.status_code} {problem.code}: {problem.detail}")
    print("\n".join(out))

