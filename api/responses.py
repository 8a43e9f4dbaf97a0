"""How every JSON answer is made: dumped through its documented schema, plus
ETags and If-Match.

The schema a view passes to :func:`respond` is the one its ``@blp.response``
documents, so the bytes sent and ``/openapi.json`` cannot drift apart: a key
the schema does not declare is never sent (marshmallow dumps declared fields
only), and the keys come out in the schema's declaration order.  The body is
compact JSON (no spaces, keys not sorted, non-ASCII escaped), the form the API
has always sent and the idempotency store replays byte for byte.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from flask import Response, request
from marshmallow import Schema

from ledger.errors import ValidationFailed

SchemaLike = Schema | type[Schema]


@cache
def _instance(schema: type[Schema]) -> Schema:
    """One instance per schema class: dumping keeps no state between calls."""
    return schema()


def serialize(schema: SchemaLike, obj: Any) -> str:
    """``obj`` (a mapping or an object with those attributes) as the JSON text
    of ``schema``: declared fields only, absent ones left out."""
    dumper = _instance(schema) if isinstance(schema, type) else schema
    return json.dumps(dumper.dump(obj), separators=(",", ":"))


def respond(
    schema: SchemaLike, obj: Any, status: int = 200, *, version: int | None = None,
    location: str | None = None,
) -> Response:
    """The JSON answer of a view: ``obj`` dumped through ``schema``, with
    ``ETag: "<version>"`` and ``Location`` when given."""
    return respond_text(serialize(schema, obj), status, version=version, location=location)


def respond_text(text: str, status: int = 200, *, version: int | None = None,
                 location: str | None = None) -> Response:
    """:func:`respond` for a body already serialized."""
    response = Response(text, status=status, mimetype="application/json")
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
    # ASCII digits only: str.isdigit() also takes "²" and "٣", which int()
    # refuses or reads as another number; 18 digits fit PostgreSQL's bigint.
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise ValidationFailed({"If-Match": ['must be an ETag from a GET, e.g. "3"']})
    return int(value)

