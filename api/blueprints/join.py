"""``GET /v1/join/{token}`` (public): is this participant's access token valid,
and for which event and sessions (R10–R11)?

The token arrives by e-mail (workers/notify.py) and is checked here by its hash
(ledger/access_tokens.py).  Validity is decided twice: the hash must be known
and not revoked, *and* the registration must still hold a ticket for a
scheduled event.  The second check reads the aggregates themselves, so a
rejection or a cancellation closes access at once, even if the notify worker
has not revoked the row yet.  Unknown, malformed and revoked tokens are the
same 404, so the answer reveals nothing about which tokens ever existed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import Schema, fields

from api.context import current_ledger
from api.responses import respond
from api.schemas import EventSessionSchema
from ledger import access_tokens
from ledger.errors import NotFound

if TYPE_CHECKING:
    from ledger.container import Ledger

blp = Blueprint("join", __name__, url_prefix="/v1", description="Participants' access tokens")


class JoinSchema(Schema):
    valid = fields.Boolean(metadata={"example": True})
    event_id = fields.String()
    title = fields.String(metadata={"description": "the event's title"})
    permanent = fields.Boolean(metadata={"description": "paid once, every session included (R10)"})
    timezone = fields.String(metadata={"example": "Europe/Warsaw"})
    sessions = fields.List(fields.Nested(EventSessionSchema),
                           metadata={"description": "every session the token opens, in UTC"})


def join_info(ledger: Ledger, token: str) -> dict[str, Any] | None:
    """What a valid token opens, or None.  Also meant for the ``/join/{token}``
    web page, so that the page and the API can never disagree."""
    with ledger.db.transaction() as conn:
        access = access_tokens.find(conn, token)
    if access is None:
        return None
    try:
        registration = ledger.service.registration(access.registration_id)
        paid_event = ledger.service.event(access.event_id)
    except NotFound:
        return None
    if not registration.keeps_ticket or paid_event.status != "scheduled":
        return None
    return {
        "valid": True,
        "event_id": str(paid_event.id),
        "title": paid_event.title,
        "permanent": paid_event.permanent,
        "timezone": paid_event.timezone,
        "sessions": sorted((dict(s) for s in paid_event.sessions), key=lambda s: s["starts_at"]),
    }


@blp.route("/join/<token>")
class Join(MethodView):
    @blp.response(200, JoinSchema)
    def get(self, token: str) -> Any:
        """Check an access token from a payment confirmation e-mail (public).

        Unknown, revoked (participant rejected, event cancelled, refunded)
        → 404 ``not_found``.
        """
        info = join_info(current_ledger(), token)
        if info is None:
            raise NotFound("unknown or revoked access token")
        response = respond(JoinSchema, info)
        response.headers["Cache-Control"] = "no-store"  # a personal credential is in the URL
        return response
