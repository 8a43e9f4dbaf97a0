"""Stripe's form encoding, decoded the way Stripe's API does.

``metadata[registration_id]=r1&line_items[0][price]=p&line_items[0][quantity]=1``
becomes ``{"metadata": {"registration_id": "r1"}, "line_items": [{"price": "p",
"quantity": "1"}]}``.  Values stay strings, as on the wire; ``a[]=x`` appends.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.contracts.http_stub import Request

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if match is None:
            root[raw_key] = value
            continue
        path = [match.group(1), *_PART.findall(match.group(2))]
        node = root
        for depth, part in enumerate(path):
            name = part or str(len(node))  # "a[]" appends
            if depth == len(path) - 1:
                node[name] = value
            else:
                node = node.setdefault(name, {})
    return _listify(root)


def fingerprint(request: Request) -> str:
    """What must match for an idempotent replay: method, path, parameters."""
    params = decode_form(request.form()) if request.body else {}
    return json.dumps([request.method, request.path, params], sort_keys=True)


def _listify(node: Any) -> Any:
    """Dicts keyed ``"0"``, ``"1"`` ... become lists, recursively."""
    if not isinstance(node, dict):
        return node
    converted = {key: _listify(value) for key, value in node.items()}
    if converted and all(key.isdigit() for key in converted):
        return [converted[key] for key in sorted(converted, key=int)]
    return converted
