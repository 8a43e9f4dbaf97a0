"""The event JSON Schemas for Kafka consumers, generated from one source.

The first release wrote ``docs/schemas/*.json`` by hand beside the event
classes, and they drifted (the ``provider`` enum).  Now each per-event file is
*generated*:

* the envelope properties come from ``docs/schemas/envelope.json`` (the one
  hand-written file: what every message carries);
* which data fields exist, their JSON types, nullability and ``required`` come
  from the event class's own annotations (``ledger/domain/``), the
  ``schema_version`` from its ``class_version``;
* code-owned facts come from the code: the ``provider`` enum from the provider
  registry, ``price_minor``'s maximum from R6 and every other ``*_minor``
  maximum from R21 (``ledger.money``);
* the prose (descriptions, formats, patterns) from :mod:`ledger.event_catalog`.

``python -m ledger.event_schemas`` (``make schemas``) rewrites the files;
``tests/unit/test_event_schemas.py`` fails when a file differs from what the
code generates, or a class field has no catalog entry.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ledger.event_catalog import EVENTS
from ledger.event_log import PII_FIELDS, PUBLIC_TYPES
from ledger.money import MAX_AMOUNT_MINOR, minor_digits
from ledger.personal_data import ERASED, PERSONAL_FIELDS
from ledger.providers.description import MAX_PRICE_MAJOR
from ledger.providers.registry import PROVIDERS

SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"
R21_NOTE = (
    f"At most 10 times the currency's maximum ticket price (R6, R21): never above {MAX_AMOUNT_MINOR}, "
    "so it fits 53 bits."
)
#: R6: the largest ticket price in minor units of any currency (prices, not amounts received).
MAX_PRICE_MINOR = max(major * 10 ** minor_digits(code) for code, major in MAX_PRICE_MAJOR.items())
_JSON_TYPES = {"int": "integer", "str": "string", "bool": "boolean", "dict": "object", "list": "array",
               "float": "number"}


class SchemaSourceError(Exception):
    """A class field the catalog does not document, or an unknown annotation."""


def class_fields(cls: type[Any]) -> dict[str, str]:
    """The fields our domain declares on an event class (not the library's
    envelope), with their annotations, in declaration order."""
    found: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("ledger."):
            for name, annotation in vars(klass).get("__annotations__", {}).items():
                found[name] = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    return found


def _json_type(annotation: str, where: str) -> str | list[str]:
    parts = [p.strip() for p in annotation.split("|")]
    nullable = "None" in parts
    base = [p for p in parts if p != "None"]
    if len(base) != 1:
        raise SchemaSourceError(f"{where}: cannot map the annotation {annotation!r}")
    json_type = _JSON_TYPES.get(base[0].split("[")[0])
    if json_type is None:
        raise SchemaSourceError(f"{where}: cannot map the annotation {annotation!r}")
    return [json_type, "null"] if nullable else json_type


def _field_schema(public: str, name: str, annotation: str) -> dict[str, Any]:
    where = f"{public}.{name}"
    docs = EVENTS.get(public, {}).get("fields", {})
    if name not in docs:
        raise SchemaSourceError(f"{where} has no entry in ledger/event_catalog.py: document it there")
    schema: dict[str, Any] = {"type": _json_type(annotation, where), **docs[name]}
    if name == "provider":
        schema["enum"] = list(PROVIDERS)
    if name == "price_minor":
        schema["maximum"] = MAX_PRICE_MINOR  # R6 (the catalog's description says so)
    elif name.endswith("_minor"):
        schema["maximum"] = MAX_AMOUNT_MINOR
        schema["description"] = f"{schema['description']}. {R21_NOTE}" if schema.get("description") else R21_NOTE
    return schema


def envelope() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS_DIR / "envelope.json").read_text())
    return loaded


def build(cls: type[Any]) -> dict[str, Any]:
    """The JSON Schema of one event type's Kafka message."""
    public, aggregate_type = PUBLIC_TYPES[cls]
    if public not in EVENTS:
        raise SchemaSourceError(f"{public} has no entry in ledger/event_catalog.py")
    version = getattr(cls, "class_version", 1)
    fields = class_fields(cls)
    if cls in PERSONAL_FIELDS:  # decoded by ledger.personal_data: says whether the fields were erased
        fields[ERASED] = "bool"
    documented = set(EVENTS[public]["fields"])
    stale = sorted(documented - set(fields))
    if stale:
        raise SchemaSourceError(f"{public}: the catalog documents fields the class lacks: {stale}")
    base = envelope()
    properties: dict[str, Any] = {}
    for key, value in base["properties"].items():
        if key == "type":
            properties[key] = {"const": public}
        elif key == "aggregate_type":
            properties[key] = {"const": aggregate_type}
        elif key == "schema_version":
            properties[key] = {"const": version}
        elif key == "data":
            properties[key] = {
                "type": "object",
                "required": [name for name in fields if name not in PII_FIELDS],
                "additionalProperties": False,
                "properties": {name: _field_schema(public, name, ann) for name, ann in fields.items()},
            }
        else:
            properties[key] = value
    return {
        "$schema": base["$schema"],
        "$id": f"urn:webinar-ledger:events:{public}:v{version}",
        "title": public,
        "description": EVENTS[public]["description"],
        "type": "object",
        "required": base["required"],
        "additionalProperties": False,
        "properties": properties,
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def generated() -> dict[str, str]:
    """File name → the text the code generates for it (every public type)."""
    return {f"{public}.json": render(build(cls)) for cls, (public, _) in PUBLIC_TYPES.items()}


def main(argv: list[str]) -> int:
    """Rewrite docs/schemas/<Type>.json from the code (``make schemas``)."""
    target = Path(argv[0]) if argv else SCHEMAS_DIR
    for name, text in generated().items():
        (target / name).write_text(text)
    print(f"wrote {len(PUBLIC_TYPES)} schemas into {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
