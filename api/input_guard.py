"""Refuse, at the door, input that no view should ever have to handle.

Registered as a ``before_request`` hook by :func:`api.app.create_app`, so it
runs before authentication of the body, idempotency and every view: a refused
request writes nothing.  What it refuses, each with a 4xx problem+json:

* JSON that Python cannot read safely (400 ``malformed_json``): not UTF-8,
  nested deeper than :data:`MAX_JSON_DEPTH`, an integer literal longer than
  Python converts (4300 digits), or the non-standard ``NaN`` / ``Infinity``;
* text that PostgreSQL cannot store (422 ``validation_failed`` naming the
  field): NUL (U+0000) and lone surrogates (``"\\ud800"``: valid JSON escapes,
  but not Unicode, so no UTF-8 encoder takes them) -- in the JSON body, the
  query string, form fields and the path.

Without this, each of these was a 500 deep inside a write, or worse, an event
that a projection could not apply.  Webhook bodies are raw bytes verified by
their signature; the gateways read them (``ledger.providers``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Request, request
from webargs.flaskparser import is_json_request

from ledger.errors import MalformedJson, ValidationFailed

#: The deepest nesting a JSON body may have.  Our documents are at most four
#: levels deep; the bound keeps every walk over a body short and is far below
#: the interpreter's recursion limit, which ``json.loads`` hits at about 1000.
MAX_JSON_DEPTH = 32

#: The bodies werkzeug reads into ``request.form`` (for any other, it is empty).
_FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def refuse_unreadable_input() -> None:
    """The ``before_request`` hook (module docstring)."""
    refuse_unreadable(request._get_current_object())  # type: ignore[attr-defined]  # one proxy look-up, not ten


def refuse_unreadable(req: Request) -> None:
    """Refuse ``req`` if it carries anything the module docstring lists."""
    path = req.path
    _check_text(path, "_path")
    if req.query_string:  # werkzeug parses no arguments from an empty query string
        for name, value in req.args.items(multi=True):
            _check_text(name, "_query")
            _check_text(value, name)
    if path.startswith("/v1/webhooks/"):
        return  # raw bodies, verified by signature and read by the gateways
    if req.mimetype in _FORM_TYPES:  # werkzeug parses no other body as a form
        for name, value in req.form.items(multi=True):
            _check_text(name, "_form")
            _check_text(value, name)
    if is_json_request(req):
        raw = req.get_data(cache=True)
        if raw:
            refuse_walk(parse_json(raw))


def parse_json(raw: bytes) -> Any:
    """``raw`` as JSON, or :class:`MalformedJson` (never a RecursionError or a
    ValueError escaping as a 500)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson("the body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise MalformedJson(f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as exc:  # JSONDecodeError, and "Exceeds the limit (4300 digits)"
        detail = str(exc).split(":")[0] if "digits" in str(exc) else f"invalid JSON: {exc}"
        raise MalformedJson(detail[:200]) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_text(value: str, where: str) -> None:
    found = _UNSTORABLE.search(value)
    if found is None:
        return
    field = _UNSTORABLE.sub("", where) or "_body"
    if found.group() == "\x00":
        raise ValidationFailed({field: ["must not contain NUL characters"]})
    raise ValidationFailed({field: ["must be valid Unicode text (a lone surrogate such as \\ud800 is not)"]})


def refuse_walk(document: Any) -> None:
    """Refuse ``document`` (parsed JSON) if it is nested too deep or holds
    text PostgreSQL cannot store: every string and key is checked, without
    recursion (depth is bounded)."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise MalformedJson(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(value, str):
            _check_text(value, path or "_body")
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(key, f"{path}.{key}" if path else key)
                stack.append((item, f"{path}.{key}" if path else str(key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{path}.{i}" if path else str(i), depth + 1) for i, item in enumerate(value))
