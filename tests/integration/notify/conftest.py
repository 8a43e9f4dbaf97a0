"""Notify fixtures: a fresh ledger that sends through the in-process SMTP
server (tests/support/smtp.py), and a ``World`` on it (tests/support/notify_world.py)."""

from __future__ import annotations

import dataclasses

import pytest

from ledger.container import Ledger
from tests.support.notify_world import World
from tests.support.smtp import SmtpTestServer


@pytest.fixture
def smtp_ledger(fresh_ledger: Ledger, smtp_server: SmtpTestServer) -> Ledger:
    """The fresh ledger, configured to send through the test SMTP server."""
    settings = dataclasses.replace(fresh_ledger.settings, smtp_url=smtp_server.url)
    return dataclasses.replace(fresh_ledger, settings=settings)


@pytest.fixture
def world(smtp_ledger: Ledger) -> World:
    return World(smtp_ledger)
