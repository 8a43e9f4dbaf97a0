"""The per-request shortcuts of the app's floor (docs/performance.md, "Session 4,
part 2") answer exactly what Flask's own code answers.

* ``LedgerFlask.ensure_sync``: plain functions are returned as they are, bound
  methods of per-request ``MethodView`` instances share one remembered answer,
  and a coroutine function is still handed to Flask's ``async_to_sync`` every
  time (without the ``async`` extra installed, that is Flask's refusal).
* The page session: a request without the cookie gets a new empty session, a
  signed cookie is still read (and a forged one still ignored), and an
  untouched empty session still sends no cookie and no ``Vary: Cookie``,
  while a changed one still does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask, session
from flask.views import MethodView

from api.app import LedgerFlask
from api.pages.session_auth import COOKIE_NAME, configure
from tests.support.settings import make_settings


def test_plain_functions_and_methods_are_answered_once_and_unchanged() -> None:
    app = LedgerFlask(__name__)

    def hook() -> None:
        return None

    assert app.ensure_sync(hook) is hook
    assert app.ensure_sync(hook) is hook

    class View(MethodView):
        def get(self) -> str:
            return "ok"

    first, second = View().get, View().get  # a MethodView is built anew per request
    assert app.ensure_sync(first) is first
    assert app.ensure_sync(second) is second
    assert len(app._plain) == 2  # hook, View.get: one entry for every instance's bound method


def test_coroutine_functions_still_go_through_flask_every_time() -> None:
    app, plain = LedgerFlask(__name__), Flask(__name__)

    async def view() -> str:
        return "ok"

    def outcome(flask_app: Flask) -> Any:
        try:
            return type(flask_app.ensure_sync(view))
        except RuntimeError as exc:  # Flask without its "async" extra
            return str(exc)

    assert outcome(app) == outcome(plain)
    assert outcome(app) == outcome(plain)  # asked again: not remembered as plain
    assert view not in app._plain


@pytest.fixture
def pages_app(tmp_path: Path) -> Flask:
    app = LedgerFlask(__name__)
    configure(app, make_settings(tmp_path))

    @app.get("/app/set")
    def set_value() -> str:
        session["lang"] = "pl"
        return "set"

    @app.get("/app/read")
    def read_value() -> str:
        return str(session.get("lang"))

    @app.get("/v1/nothing")
    def nothing() -> str:
        return "nothing"

    return app


def test_no_cookie_no_session_cookie_and_no_vary(pages_app: Flask) -> None:
    client = pages_app.test_client()
    response = client.get("/v1/nothing")
    assert response.get_data(as_text=True) == "nothing"
    assert "Set-Cookie" not in response.headers
    assert "Vary" not in response.headers
    read = client.get("/app/read")  # read, not changed: Vary, no cookie
    assert read.get_data(as_text=True) == "None"
    assert read.headers["Vary"] == "Cookie"
    assert "Set-Cookie" not in read.headers


def test_signed_cookie_still_read_and_forged_one_ignored(pages_app: Flask) -> None:
    client = pages_app.test_client()
    answer = client.get("/app/set")
    assert COOKIE_NAME in answer.headers["Set-Cookie"]
    assert answer.headers["Vary"] == "Cookie"
    assert client.get("/app/read").get_data(as_text=True) == "pl"

    forged = pages_app.test_client()
    forged.set_cookie(COOKIE_NAME, "eyJsYW5nIjoicGwifQ.forged.signature", path="/app")
    assert forged.get("/app/read").get_data(as_text=True) == "None"
