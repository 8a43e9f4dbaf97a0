"""Small helpers every view uses: JSON bodies, ETags and If-Match."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request

from ledger.errors import ValidationFailed


def json_response(
    payload: Any, status: int = 200, *, version: int | None = None, location: str | None = None
) -> Response:
    response = Response(json.dumps(payload, separators=(",", ":")), status=status,
                        mimetype="application/json")
    if version is not None:
        response.headers["ETag"] = f'"{version}"'
    if location:
        response.headers["Location"] = location
    return response


def if_match() -> int | None:
    """The version a mutating request expects (``If-Match: "3"``), if it says."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise ValidationFailed({"If-Match": ['must be an ETag from a GET, e.g. "3"']})
    return int(value)
