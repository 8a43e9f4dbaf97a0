"""Proof for auditors (R23): signed checkpoints of the event log, the key that
signs them, and inclusion and consistency proofs (RFC 9162 shapes).

Everything here reads what the sealer committed (``ledger.proof``); proofs
reach only as far as the seal, which trails the log by about a second.  The
public key is public on purpose: an auditor must be able to fetch it (and pin
it) without holding a ledger credential.  See docs/audit.md.
"""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import EXCLUDE, Schema, fields, validate

from api.auth import authenticated
from api.context import current_ledger
from api.responses import respond
from ledger.errors import NotFound
from ledger.proof import checkpoints, queries

blp = Blueprint("proofs", __name__, url_prefix="/v1", description="Proof for auditors")

#: Positions and sizes are 63-bit in PostgreSQL; larger numbers are refused as input.
_MAX = 2**63 - 1


class CheckpointSchema(Schema):
    size = fields.Integer(required=True, metadata={"description": "events covered: the first `size` of the log"})
    root = fields.String(required=True, metadata={"description": "RFC 9162 Merkle tree hash of those events (hex)"})
    time = fields.String(required=True, metadata={"description": "when it was signed (RFC 3339, UTC)"})
    key_id = fields.String(required=True, metadata={"description": "first 8 bytes of SHA-256 of the public key (hex)"})
    signature = fields.String(required=True, metadata={
        "description": "Ed25519 over `ledger-checkpoint-v1\\n{size}\\n{root}\\n{time}\\n` (hex)",
    })


class PublicKeySchema(Schema):
    algorithm = fields.String(required=True, metadata={"example": "Ed25519"})
    key_id = fields.String(required=True)
    public_key = fields.String(required=True, metadata={"description": "raw 32-byte public key (hex)"})


class InclusionQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    position = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=_MAX))
    size = fields.Integer(required=True, strict=False, validate=validate.Range(min=1, max=_MAX))


class ConsistencyQuerySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    from_size = fields.Integer(required=True, strict=False, validate=validate.Range(min=0, max=_MAX))
    to_size = fields.Integer(required=True, strict=False, validate=validate.Range(min=0, max=_MAX))


class InclusionProofSchema(Schema):
    position = fields.Integer(required=True)
    leaf_index = fields.Integer(required=True, metadata={"description": "events before it in the log"})
    size = fields.Integer(required=True)
    leaf_hash = fields.String(required=True, metadata={"description": "SHA-256(0x00 || encoding), hex"})
    encoding = fields.String(required=True, metadata={"description": "the event's canonical bytes, base64"})
    path = fields.List(fields.String(), required=True, metadata={"description": "RFC 9162 audit path, hex"})


class ConsistencyProofSchema(Schema):
    from_size = fields.Integer(required=True)
    to_size = fields.Integer(required=True)
    path = fields.List(fields.String(), required=True, metadata={"description": "RFC 9162 consistency proof, hex"})


def _public_key_document() -> dict[str, str]:
    ledger = current_ledger()
    key = checkpoints.load_signing_key(ledger.settings.data_dir)
    return checkpoints.public_key_document(key)


@blp.route("/ledger/checkpoints/latest")
class LatestCheckpoint(MethodView):
    @authenticated("finance")
    @blp.response(200, CheckpointSchema)
    def get(self) -> Any:
        """The latest signed checkpoint: save it outside the system (month end)
        and check later that today's log still extends it."""
        with current_ledger().db.transaction() as conn:
            found = checkpoints.latest(conn)
        if found is None:
            raise NotFound("no checkpoint has been signed yet")
        return respond(CheckpointSchema, found.as_dict())


@blp.route("/ledger/checkpoints/public-key")
class CheckpointKey(MethodView):
    @blp.response(200, PublicKeySchema)
    def get(self) -> Any:
        """The Ed25519 public key that signs checkpoints (public)."""
        return respond(PublicKeySchema, _public_key_document())


@blp.route("/ledger/proofs/inclusion")
class InclusionProof(MethodView):
    @authenticated("finance")
    @blp.arguments(InclusionQuerySchema, location="query")
    @blp.response(200, InclusionProofSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Proof that the event at `position` is in the tree of the first `size` events."""
        with current_ledger().db.transaction() as conn:
            proof = queries.inclusion_proof(conn, args["position"], args["size"])
        return respond(InclusionProofSchema, proof)


@blp.route("/ledger/proofs/consistency")
class ConsistencyProof(MethodView):
    @authenticated("finance")
    @blp.arguments(ConsistencyQuerySchema, location="query")
    @blp.response(200, ConsistencyProofSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """Proof that the first `from_size` events are a prefix of the first `to_size`."""
        with current_ledger().db.transaction() as conn:
            proof = queries.consistency_proof(conn, args["from_size"], args["to_size"])
        return respond(ConsistencyProofSchema, proof)
