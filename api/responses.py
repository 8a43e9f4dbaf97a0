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
from functools import cache, lru_cache
from typing import Any

from flask import Response, request
from marshmallow import Schema, fields, missing

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
    return json.dumps(dump(dumper, obj), separators=(",", ":"))


def dump(schema: Schema, obj: Any) -> Any:
    """``schema.dump(obj)``, through :func:`_plan` when it has one and ``obj``
    is a plain dict (the views' answers): a registration's answer took
    marshmallow about 15 us of CPU, the plan a few."""
    plan = _plan(schema) if type(obj) is dict else None
    if plan is not None:
        try:
            return _dump_planned(plan, obj)
        except Exception:  # noqa: S110 - marshmallow decides what an odd value gives (or raises)
            pass
    return schema.dump(obj)


#: (key, how its value is dumped, the nested schema and its plan) per field.
Plan = tuple[tuple[str, str, Schema | None, Any], ...]
_NO_VALUE = object()


def _dump_planned(plan: Plan, obj: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, kind, nested, nested_plan in plan:
        value = obj.get(key, _NO_VALUE)
        if value is _NO_VALUE:
            continue  # marshmallow leaves out what the dict lacks (no field name is a dict attribute)
        if value is None or kind == "raw":
            out[key] = value
        elif kind == "str":
            out[key] = value.decode("utf-8") if isinstance(value, bytes) else str(value)
        elif kind == "int":
            out[key] = int(value)
        elif nested_plan is not None and type(value) is dict:
            out[key] = _dump_planned(nested_plan, value)
        else:
            out[key] = nested.dump(value)  # type: ignore[union-attr]
    return out


@lru_cache(maxsize=256)  # bounded: a view may pass a new instance per request
def _plan(schema: Schema) -> Plan | None:
    """What ``schema.dump`` does to a dict, when it is only this: each field
    read by its own name and written under it, missing keys left out, ``None``
    kept, and the value taken as it is (``Raw``), as ``str`` (``String`` and
    subclasses that change only loading), as ``int`` (``Integer``) or through a
    nested schema.  ``None`` (use marshmallow) for anything else: hooks,
    ``many``, ``only``/``exclude``, ``data_key``, ``attribute``, defaults on
    dump, other field types.  ``tests/unit/test_response_dump.py`` checks
    every response schema both ways."""
    if schema.many or schema.dict_class is not dict or schema.only or schema.exclude \
            or any(schema._hooks.values()):  # type: ignore[attr-defined]
        return None
    plan = []
    for name, field in schema.dump_fields.items():
        cls = type(field)
        if (field.data_key not in (None, name) or field.attribute is not None or field.dump_default is not missing
                or name in _DICT_ATTRIBUTES or "." in name or cls.serialize is not fields.Field.serialize
                or cls.get_value is not fields.Field.get_value or not cls._CHECK_ATTRIBUTE):
            return None
        nested, nested_plan = None, None
        if cls._serialize is fields.Field._serialize:
            kind = "raw"
        elif cls._serialize is fields.String._serialize:
            kind = "str"
        elif isinstance(field, fields.Integer) and cls._serialize is fields.Number._serialize \
                and type(field)._format_num is fields.Number._format_num and not field.as_string:
            kind = "int"
        elif isinstance(field, fields.Nested) and cls is fields.Nested and not field.many and field.only is None \
                and not field.exclude \
                and isinstance(field.schema, Schema) and not field.schema.many:
            kind, nested = "nested", field.schema
            nested_plan = _plan(nested)
        else:
            return None
        plan.append((name, kind, nested, nested_plan))
    return tuple(plan)


_DICT_ATTRIBUTES = frozenset(dir(dict))


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

