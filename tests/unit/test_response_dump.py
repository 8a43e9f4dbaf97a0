"""``api.responses.dump`` gives what ``Schema.dump`` gives, key order included,
for every schema of ``api.schemas`` and for dicts of every shape a view could
pass: values present, ``None``, absent, of other types (UUIDs, numbers,
bytes, objects), extra keys, nested objects that are not dicts, and values
marshmallow refuses (the same error either way)."""

from __future__ import annotations

import inspect
import json
import uuid
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from marshmallow import Schema, fields

from api import schemas
from api.responses import _plan, dump

SCHEMAS = sorted((obj for obj in vars(schemas).values()
                  if inspect.isclass(obj) and issubclass(obj, Schema) and obj is not Schema),
                 key=lambda cls: cls.__name__)


def _value(field: fields.Field, variant: int) -> Any:
    if isinstance(field, fields.Nested):
        inner = _sample(field.schema, variant) if not field.many else [_sample(field.schema, variant)]
        return SimpleNamespace(**inner) if variant == 3 and isinstance(inner, dict) else inner
    if isinstance(field, fields.Integer):
        return [7, True, "12", 3.9][variant % 4]
    if isinstance(field, fields.String):
        return ["text é", uuid.UUID(int=variant), 5, b"bytes"][variant % 4]
    return ["raw", Decimal("1.50"), {"a": 1}, [1, 2]][variant % 4]


def _sample(schema: Schema, variant: int) -> dict[str, Any]:
    out: dict[str, Any] = {"not_declared": "left out"}
    for i, (name, field) in enumerate(schema.dump_fields.items()):
        if variant == 1 and i % 2:
            continue  # absent
        out[name] = None if variant == 2 and i % 2 == 0 else _value(field, variant)
    return out


def _outcome(schema: Schema, obj: Any, how: Any) -> Any:
    try:
        return json.dumps(how(schema, obj))  # the text: the key order counts
    except Exception as exc:
        return type(exc)


@pytest.mark.parametrize("schema_class", SCHEMAS, ids=lambda cls: cls.__name__)
@pytest.mark.parametrize("variant", range(4))
def test_dump_is_marshmallows_dump(schema_class: type[Schema], variant: int) -> None:
    schema = schema_class()
    obj = _sample(schema, variant)
    assert _outcome(schema, obj, dump) == _outcome(schema, obj, lambda s, o: s.dump(o))


@pytest.mark.parametrize("bad", ["twelve", [1], object()])
def test_a_value_marshmallow_refuses_is_refused_the_same_way(bad: Any) -> None:
    schema = schemas.RegistrationCreatedSchema()
    obj = {"id": "x", "version": bad}
    assert _outcome(schema, obj, dump) == _outcome(schema, obj, lambda s, o: s.dump(o))


def test_the_answers_that_come_in_floods_have_a_plan() -> None:
    assert _plan(schemas.RegistrationCreatedSchema()) is not None


def test_what_the_plan_cannot_follow_goes_to_marshmallow() -> None:
    class Renamed(Schema):
        name = fields.String(data_key="title")

    class Dated(Schema):
        at = fields.DateTime()

    assert _plan(Renamed()) is None and _plan(Dated()) is None
    assert dump(Renamed(), {"name": "x"}) == {"title": "x"}
