"""One place that turns every refusal into RFC 9457 problem+json.

Domain errors carry their own ``code`` and status; HTTP errors from Flask,
werkzeug and webargs (bad JSON, validation, 404 routes, 413 bodies) get codes
here.  Anything unexpected is logged without the request body (no personal
data in logs) and answered with a bare 500 problem.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from ledger.errors import LedgerError, MalformedJson

log = logging.getLogger(__name__)

PROBLEM = "application/problem+json"

_HTTP_CODES = {
    400: "malformed_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "version_conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}


def problem(
    status: int, code: str, title: str, detail: str, errors: dict[str, Any] | None = None
) -> Response:
    body: dict[str, Any] = {
        "type": f"https://ledger.example/problems/{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if errors:
        body["errors"] = errors
    return Response(json.dumps(body), status=status, mimetype=PROBLEM)


def _flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs nests messages by location and field; clients want ``field: [..]``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in ("json", "query", "headers", "form", "view_args") and not prefix:
                out.update(_flatten(value, ""))
            else:
                out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "_body"] = list(messages)
    elif isinstance(messages, list):
        for i, value in enumerate(messages):
            out.update(_flatten(value, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix or "_body"] = [str(messages)]
    return out


def ledger_problem(exc: LedgerError) -> Response:
    """A domain refusal: its own status, code and field errors."""
    return problem(exc.status, exc.code, exc.title, exc.detail, exc.errors())


def http_problem(exc: HTTPException) -> Response:
    """An HTTP error from Flask, werkzeug or webargs, with our code."""
    status = exc.code or 500
    code = _HTTP_CODES.get(status, "http_error")
    errors = None
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and "messages" in data:
        errors = _flatten(data["messages"])
        if status == 400 or any("Invalid JSON" in m for v in errors.values() for m in v):
            status, code = 400, "malformed_json"
    detail = exc.description or exc.name
    if errors:
        detail = "; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items())
    response = problem(status, code, exc.name, detail, errors)
    if status == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def unexpected_problem(exc: Exception) -> Response:
    """Anything else: logged (no request body), a bare 500.  Call it while
    ``exc`` is being handled, so that the log carries its traceback."""
    if isinstance(exc, RecursionError | ValueError) and _raised_parsing_json(exc):
        # A second line of defence behind api.input_guard: JSON too deep
        # for the interpreter, or an integer literal beyond 4300 digits.
        return problem(400, "malformed_json", MalformedJson.title, "the body is not JSON the ledger can read")
    log.exception("unhandled error: %s", type(exc).__name__)
    return problem(500, "internal_error", "Internal error", "an unexpected error occurred")


def render(exc: Exception) -> Response:
    """The answer to ``exc`` that the handlers of :func:`register` give, picked
    as Flask picks them (the most specific class first), for callers outside
    Flask's request cycle (``api.registration_fast_path``)."""
    if isinstance(exc, LedgerError):
        return ledger_problem(exc)
    if isinstance(exc, HTTPException):
        return http_problem(exc)
    return unexpected_problem(exc)


def register(app: Flask) -> None:
    app.register_error_handler(LedgerError, ledger_problem)
    app.register_error_handler(HTTPException, http_problem)
    app.register_error_handler(Exception, unexpected_problem)


def _raised_parsing_json(exc: BaseException) -> bool:
    """Whether ``exc`` came out of the standard library's JSON decoder."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and frames[-1].filename.endswith(("json/decoder.py", "json/__init__.py"))
