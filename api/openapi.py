"""What ``/openapi.json`` says beyond the marshmallow schemas (API.md,
"Additions after the first release": the document is exact).

flask-smorest documents each operation from its decorators; this module adds,
once the blueprints are registered, what the decorators cannot say:

* every error an operation can answer, as RFC 9457 ``application/problem+json``
  with the :class:`ProblemSchema` that :func:`api.errors.problem` sends (never
  flask-smorest's ``Error`` schema, never a catch-all ``default``);
* ``security: []`` on the public operations, bearer everywhere else;
* an ``operationId`` that reads as a function name, and the tag of the
  operation's resource;
* the request headers (``Idempotency-Key``, ``If-Match``) and response headers
  (``ETag``, ``Location``, ``Idempotent-Replayed``, ``Retry-After``);
* the ``text/csv`` answers.

:data:`OPERATIONS` names every operation; one the table does not know fails at
start-up, so a new view cannot go undocumented.
"""

from __future__ import annotations

import http
from dataclasses import dataclass
from typing import Any

from flask_smorest import Api
from marshmallow import Schema, fields

from api.errors import PROBLEM

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


class ProblemSchema(Schema):
    """An RFC 9457 problem, as every refusal is sent (``api.errors.problem``)."""

    type = fields.String(required=True, metadata={
        "format": "uri", "example": "https://ledger.example/problems/price_below_minimum"})
    title = fields.String(required=True, metadata={"example": "The price is below the minimum"})
    status = fields.Integer(required=True, metadata={"example": 422})
    detail = fields.String(required=True)
    code = fields.String(required=True, metadata={
        "description": "stable snake_case reason, e.g. price_below_minimum, version_conflict, not_found",
        "example": "price_below_minimum"})
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()), metadata={
        "description": "validation messages by field (422 validation_failed and some 400s)"})


#: The error statuses documented (component responses named by their phrase).
ERROR_DESCRIPTIONS = {
    400: "The body is not JSON the ledger can read, or a provider notification is malformed or unsigned",
    401: "No bearer token, or one the ledger does not know",
    403: "The token's role may not do this",
    404: "No such resource (also for another organizer's ids)",
    409: "A state or version conflict, or the same Idempotency-Key is still being answered",
    412: "If-Match does not name the current version",
    413: "The body is larger than the ledger accepts",
    422: "Validation failed or a business rule refused the request",
    429: "Too many requests from this client; retry after Retry-After seconds",
    502: "The payment provider refused the request it was sent (provider_rejected_request)",
    503: "The payment provider does not answer",
}

_HEADERS = {
    "ETag": {"description": 'The aggregate\'s version, e.g. "3"; send it back as If-Match',
             "schema": {"type": "string"}},
    "Location": {"description": "Where the created resource is read", "schema": {"type": "string"}},
    "Idempotent-Replayed": {"description": "true when this is the stored answer to an earlier request with "
                                           "the same Idempotency-Key", "schema": {"type": "string", "enum": ["true"]}},
    "Retry-After": {"description": "Seconds until the client may try again", "schema": {"type": "integer"}},
    "Ledger-Position": {"description": "The log position the answer's figures reflect",
                        "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
}

_IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Same key and body within 24 h: the first answer is replayed byte for byte",
    "schema": {"type": "string", "pattern": "^[ -~]{1,255}$"},
}
_IF_MATCH = {
    "name": "If-Match", "in": "header", "required": False,
    "description": 'The ETag of the version this change expects, e.g. "3" (412 when it is not current)',
    "schema": {"type": "string", "pattern": '^(W/)?"?[0-9]{1,18}"?$'},
}


@dataclass(frozen=True)
class Op:
    operation_id: str
    public: bool = False
    if_match: bool = False  # a command on an aggregate: If-Match, 409, 412
    etag: bool = False  # the answer carries ETag
    created: bool = False  # the answer carries Location
    csv: bool = False
    rate_limited: bool = False
    provider: bool = False  # may call a payment provider (502, 503)
    tag: str | None = None
    position: bool = False  # the answer carries Ledger-Position (built from a view)
    errors: tuple[int, ...] = ()  # beyond those the rules below derive
    #: The problem ``code`` values an error status of this operation can carry,
    #: by status: named in that response's description and given as examples,
    #: so a client knows what to branch on (e.g. 409 ``event_cancelled`` on a
    #: registration).  Statuses not named here keep the shared description.
    codes: tuple[tuple[int, tuple[str, ...]], ...] = ()


#: Codes every POST/PATCH can answer whatever it does (``api.idempotency``).
_KEY_409 = ("request_in_progress",)
_KEY_422 = ("validation_failed", "idempotency_key_reused")
_PRICE_422 = (
    "amount_invalid", "currency_not_supported", "currency_not_supported_by_provider", "price_below_minimum",
    "price_below_provider_minimum", "price_above_limit",
)


#: Every operation, by (method, path as documented).
OPERATIONS: dict[tuple[str, str], Op] = {
    ("get", "/healthz"): Op("get_health", public=True),
    ("get", "/readyz"): Op("get_readiness", public=True),
    ("post", "/v1/organizers"): Op("create_organizer", etag=True, created=True),
    ("get", "/v1/organizers/{org}"): Op("get_organizer", etag=True),
    ("post", "/v1/organizers/{org}/plan"): Op("change_plan", if_match=True, etag=True),
    ("put", "/v1/organizers/{org}/contact"): Op(
        "set_organizer_contact", if_match=True, etag=True, tag="organizers",
        codes=((409, ("version_conflict",)), (422, ("validation_failed",)))),
    ("get", "/v1/organizers/{org}/providers"): Op("list_provider_connections"),
    ("post", "/v1/organizers/{org}/providers"): Op("connect_provider", if_match=True, etag=True, provider=True),
    ("post", "/v1/tokens"): Op("create_token", tag="tokens", errors=(404,)),
    ("post", "/v1/events"): Op(
        "create_event", etag=True, created=True, provider=True, errors=(404,),
        codes=((409, ("version_conflict", *_KEY_409)),
               (422, (*_KEY_422, "starts_at_in_past", *_PRICE_422, "provider_not_available_in_country",
                      "provider_not_connected")))),
    ("get", "/v1/events/{event_id}"): Op("get_event", etag=True),
    ("patch", "/v1/events/{event_id}"): Op(
        "edit_event", if_match=True, etag=True,
        codes=((409, ("event_cancelled", "version_conflict", *_KEY_409)), (422, (*_KEY_422, "price_immutable")))),
    ("post", "/v1/events/{event_id}/reschedule"): Op(
        "reschedule_event", if_match=True, etag=True,
        codes=((409, ("event_cancelled", "invalid_state", "version_conflict", *_KEY_409)),
               (422, (*_KEY_422, "starts_at_in_past")))),
    ("post", "/v1/events/{event_id}/cancel"): Op(
        "cancel_event", if_match=True, etag=True,
        codes=((409, ("event_cancelled", "version_conflict", *_KEY_409)), (422, _KEY_422))),
    ("post", "/v1/events/{event_id}/registrations"): Op(
        "create_registration", public=True, rate_limited=True, provider=True, etag=True, created=True,
        codes=((409, ("event_cancelled", "version_conflict", *_KEY_409)),
               (422, (*_KEY_422, "capacity_exhausted")))),
    ("get", "/v1/registrations/{registration_id}"): Op("get_registration", etag=True),
    ("post", "/v1/registrations/{registration_id}/payments"): Op("record_payment", if_match=True, etag=True),
    ("post", "/v1/registrations/{registration_id}/confirm"): Op("confirm_registration", if_match=True, etag=True),
    ("post", "/v1/registrations/{registration_id}/reject"): Op("reject_registration", if_match=True, etag=True),
    ("post", "/v1/registrations/{registration_id}/resend-confirmation"): Op(
        "resend_confirmation", if_match=True, etag=True),
    ("post", "/v1/registrations/{registration_id}/refunds"): Op("record_refund", if_match=True, etag=True),
    ("post", "/v1/erasures"): Op("erase_personal_data", errors=(404,)),
    ("get", "/v1/events/{event_id}/participants"): Op("list_participants", csv=True, position=True),
    ("get", "/v1/reports/fees"): Op("get_fee_report", csv=True, position=True, errors=(404,)),
    ("get", "/v1/books/trial-balance"): Op("get_trial_balance", position=True, errors=(404,)),
    ("get", "/v1/books/journal"): Op("list_journal_entries", position=True, errors=(404,)),
    ("get", "/v1/organizers/{org}/statement"): Op("get_organizer_statement", csv=True, position=True, tag="books"),
    ("get", "/v1/ledger/events"): Op("list_ledger_events"),
    ("get", "/v1/ledger/checkpoints/latest"): Op("get_latest_checkpoint", errors=(404,)),
    ("get", "/v1/ledger/checkpoints/public-key"): Op("get_checkpoint_public_key", public=True),
    ("get", "/v1/ledger/proofs/inclusion"): Op("get_inclusion_proof", errors=(409,)),
    ("get", "/v1/ledger/proofs/consistency"): Op("get_consistency_proof", errors=(409,)),
    ("get", "/v1/join/{token}"): Op("check_join_token", public=True, rate_limited=True),
    ("post", "/v1/webhooks/{provider}/{connection_id}"): Op("receive_webhook", public=True),
    ("get", "/v1/webhooks/{provider}/{connection_id}/return"): Op(
        "participant_return", public=True, rate_limited=True, provider=True),
    ("get", "/v1/webhooks/{provider}/{connection_id}/cancel"): Op(
        "participant_cancel", public=True, rate_limited=True, provider=True),
    ("post", "/v1/registrations/{registration_id}/checkout"): Op(
        "retry_checkout", public=True, rate_limited=True, provider=True, tag="registrations"),
}


class LedgerApi(Api):
    """flask-smorest's ``Api`` with problem+json errors and no ``default`` error."""

    ERROR_SCHEMA = ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # each operation lists its own errors

    def _register_responses(self) -> None:
        for status in http.HTTPStatus:
            if status < 400:
                continue
            response: dict[str, Any] = {
                "description": ERROR_DESCRIPTIONS.get(status, status.phrase),
                "content": {PROBLEM: {"schema": PROBLEM_REF}},
            }
            if status == 429:
                response["headers"] = {"Retry-After": _HEADERS["Retry-After"]}
            self.spec.components.response(status.name, response, lazy=status not in ERROR_DESCRIPTIONS)


def register(api: Api) -> None:
    """Register the Problem schema; call before the blueprints."""
    api.spec.components.schema("Problem", schema=ProblemSchema)


def finish(api: Api) -> None:
    """Complete every documented operation; call after the blueprints."""
    paths: dict[str, dict[str, Any]] = api.spec._paths
    seen = set()
    for path, item in paths.items():
        for method, operation in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            key = (method, path)
            if key not in OPERATIONS:
                raise RuntimeError(f"api.openapi.OPERATIONS does not describe {method.upper()} {path}")
            seen.add(key)
            _complete(path, method, operation, OPERATIONS[key])
    schemas: dict[str, dict[str, Any]] = api.spec.components.schemas
    for schema in schemas.values():
        _null_in_nullable_enums(schema)
    _require_what_is_always_sent(paths, schemas)
    missing = set(OPERATIONS) - seen
    if missing:
        raise RuntimeError(f"api.openapi.OPERATIONS names operations the API does not have: {sorted(missing)}")


#: Response properties that may be left out of an answer (``respond`` dumps
#: only the keys the view supplies); every other property of a schema used
#: only in answers is listed as ``required``.
OPTIONAL: dict[str, set[str]] = {
    "Ready": {"projections", "consumers", "stuck", "books"},
    "BooksStatus": {"balanced", "position", "problems", "error"},
    "Connection": {"webhook_url"},
    "FeeReport": {"as_of"},  # only with ?as_of=
    "ParticipantPage": {"as_of", "seats"},  # as_of only with ?as_of=, seats only without
    "Participant": {"seat", "seat_held_until"},  # now, not as of a past position
    "JournalLine": {"debit", "credit"},  # a line is on one side
    "ProjectionsStatus": {"generation", "position", "head", "lag", "rebuilding", "rebuild_position",
                          "rebuild_target", "error"},
}


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


def _closure(names: set[str], schemas: dict[str, dict[str, Any]]) -> set[str]:
    todo, seen = list(names), set()
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen.add(name)
        todo += _refs(schemas[name])
    return seen


def _require_what_is_always_sent(paths: dict[str, dict[str, Any]], schemas: dict[str, dict[str, Any]]) -> None:
    answered: set[str] = set()
    read: set[str] = set()
    for item in paths.values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            read |= _refs(operation.get("requestBody", {})) | _refs(operation.get("parameters", []))
            for code, response in operation.get("responses", {}).items():
                if code.startswith("2"):
                    answered |= _refs(response)
    for name in _closure(answered, schemas) - _closure(read, schemas):
        properties = schemas[name].get("properties", {})
        required = [p for p in properties if p not in OPTIONAL.get(name, set())]
        if required:
            schemas[name]["required"] = required


def _null_in_nullable_enums(schema: dict[str, Any]) -> None:
    """OpenAPI 3.0: a ``nullable`` enum must list ``null`` among its values, or
    generated clients refuse the null the service sends."""
    for prop in schema.get("properties", {}).values():
        if prop.get("nullable") and "enum" in prop and None not in prop["enum"]:
            prop["enum"] = [*prop["enum"], None]


def _coded_response(status: int, codes: tuple[str, ...]) -> dict[str, Any]:
    """An error status with the problem codes this operation can answer in it."""
    phrase = http.HTTPStatus(status).phrase
    return {
        "description": f"{ERROR_DESCRIPTIONS.get(status, phrase)}. `code` is one of: {', '.join(codes)}",
        "content": {PROBLEM: {
            "schema": PROBLEM_REF,
            "examples": {code: {"value": {
                "type": f"https://ledger.example/problems/{code}", "title": phrase, "status": status,
                "detail": code.replace("_", " "), "code": code}} for code in codes},
        }},
    }


def _complete(path: str, method: str, operation: dict[str, Any], op: Op) -> None:
    operation["operationId"] = op.operation_id
    if op.tag:
        operation["tags"] = [op.tag]
    if op.public:
        operation["security"] = []
    responses: dict[str, Any] = operation["responses"]
    responses.pop("default", None)
    parameters: list[dict[str, Any]] = operation.setdefault("parameters", [])
    has_body = "requestBody" in operation or method in ("post", "patch")
    has_query = any(p.get("in") == "query" for p in parameters)

    errors: set[int] = set(op.errors)
    if has_body:
        errors |= {400, 413}
    if "requestBody" in operation or has_query:
        errors.add(422)
    if not op.public:
        errors |= {401, 403}
    if "{" in path:
        errors.add(404)
    if method in ("post", "patch"):
        parameters.append(dict(_IDEMPOTENCY_KEY))
        errors |= {409, 422}  # a concurrent duplicate; a key reused with another body
    if op.if_match:
        parameters.append(dict(_IF_MATCH))
        errors |= {409, 412, 422}
    if op.rate_limited:
        errors.add(429)
    if op.provider:
        errors |= {502, 503}  # the provider refused the call; the provider is down
    if op.public and not op.rate_limited and path.startswith("/v1/webhooks"):
        errors |= {400, 404}
    coded = dict(op.codes)
    for status in errors | set(coded):
        if status in coded:
            responses[str(status)] = _coded_response(status, coded[status])
        else:
            responses.setdefault(str(status), {"$ref": f"#/components/responses/{http.HTTPStatus(status).name}"})
    operation["responses"] = responses = dict(sorted(responses.items()))

    for code, response in responses.items():
        if not code.startswith("2") or "$ref" in response:
            continue
        headers = response.setdefault("headers", {})
        if op.etag:
            headers["ETag"] = _HEADERS["ETag"]
        if op.created and code == "201":
            headers["Location"] = _HEADERS["Location"]
        if op.position:
            headers["Ledger-Position"] = _HEADERS["Ledger-Position"]
        if method in ("post", "patch"):
            headers["Idempotent-Replayed"] = _HEADERS["Idempotent-Replayed"]
        if not headers:
            del response["headers"]
        if op.csv:
            response["content"]["text/csv"] = {"schema": {"type": "string"}}
