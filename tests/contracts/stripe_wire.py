"""Stripe's wire format: form decoding, error bodies, ids.

Form bodies are decoded the way Stripe's API does:

``metadata[registration_id]=r1&line_items[0][price]=p&line_items[0][quantity]=1``
becomes ``{"metadata": {"registration_id": "r1"}, "line_items": [{"price": "p",
"quantity": "1"}]}``.  Values stay strings, as on the wire; ``a[]=x`` appends.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

from tests.contracts.http_stub import Request, Response, json_response

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
    decoded: dict[str, Any] = _listify(root)
    return decoded


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


def stripe_error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    code: str | None = None,
    param: str | None = None,
) -> Response:
    """``{"error": {"type", "code", "message"[, "param"]}}`` as Stripe sends."""
    error: dict[str, Any] = {"type": type_, "code": code, "message": message}
    if param:
        error["param"] = param
    return json_response(status, {"error": error})


def missing(name: str) -> Response:
    return stripe_error(400, f"Missing required param: {name}.", code="parameter_missing", param=name)


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def resource_of(path: str) -> str | None:
    """The restricted-key permission a path needs."""
    for prefix, resource in (
        ("/v1/products", "products"),
        ("/v1/prices", "prices"),
        ("/v1/checkout/sessions", "checkout_sessions"),
    ):
        if path.startswith(prefix):
            return resource
    return None
