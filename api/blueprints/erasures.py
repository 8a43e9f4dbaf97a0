"""Erasure (R24): ``POST /v1/erasures`` erases participants' personal data.

An organizer erases its own participants, an admin anyone's; another
organizer's registration id answers exactly like an unknown one (404).  The
answer is a receipt; with an ``Idempotency-Key`` a retry gets the same one."""

from __future__ import annotations

import uuid
from typing import Any

from flask import g
from flask.views import MethodView
from flask_smorest import Blueprint

from api.auth import authenticated
from api.context import current_ledger
from api.idempotency import derived_id
from api.responses import respond
from api.schemas import ErasureCreateSchema, ErasureReceiptSchema
from ledger.erasure import MAX_REGISTRATIONS, ErasureReceipt
from ledger.errors import NotFound
from projections import who_paid_query

blp = Blueprint("erasures", __name__, url_prefix="/v1", description="Erasure of personal data (R24)")


@blp.route("/erasures")
class Erasures(MethodView):
    @authenticated("organizer")
    @blp.arguments(ErasureCreateSchema)
    @blp.response(201, ErasureReceiptSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Erase participants' personal data: their name, e-mail address and form
        fields read as erased everywhere from now on (views, CSV, the event log,
        Kafka replays), no e-mail is sent to them any more, and the amounts stay.
        Give one `registration_id`, or an `email` to erase every registration
        made with it."""
        ledger = current_ledger()
        scope = g.principal.scope
        if "email" in body:
            ids = who_paid_query.registrations_by_email(ledger, body["email"], scope=scope,
                                                        limit=MAX_REGISTRATIONS + 1)
            if not ids:
                raise NotFound("no registration with this e-mail address")
        else:
            ids = [body["registration_id"]]
        receipt = ledger.erasures.erase(ids, scope=scope, erasure_id=derived_id("erasure") or uuid.uuid4())
        return respond(ErasureReceiptSchema, _as_dict(receipt), 201)


def _as_dict(receipt: ErasureReceipt) -> dict[str, Any]:
    return {
        "id": receipt.id,
        "erased_at": receipt.erased_at.isoformat(),
        "registrations": [
            {"registration_id": r.registration_id, "event_id": r.event_id, "position": r.position,
             "already_erased": r.already_erased}
            for r in receipt.registrations
        ],
        "erased": list(receipt.erased_fields),
        "purged": dict(receipt.purged),
    }
