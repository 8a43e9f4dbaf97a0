"""Access to the wired-up ledger from inside a request."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app

if TYPE_CHECKING:
    from ledger.container import Ledger


def current_ledger() -> Ledger:
    return cast("Ledger", current_app.extensions["ledger"])
