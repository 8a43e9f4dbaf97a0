"""``/join/{token}``: the page the Join button in the confirmation e-mail opens
(API.md: ``{LEDGER_PUBLIC_URL}/join/{token}``).

It answers from the same ``join_info`` as ``GET /v1/join/{token}``, so the page
and the API can never disagree; an unknown or revoked token is a plain 404.
The token is a credential: the page is never cached and not indexed.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, make_response, render_template

from api.blueprints.join import join_info
from api.context import current_ledger
from api.pages.i18n import current_language

join_bp = Blueprint("join_page", __name__, template_folder="templates")


@join_bp.context_processor
def _language() -> dict[str, Any]:
    """The participant's page is in their browser's language (English or Polish)."""
    return {"page_language": current_language()}


@join_bp.get("/join/<token>")
def join(token: str) -> Response:
    info = join_info(current_ledger(), token) if len(token) <= 200 else None
    status = 200 if info else 404
    response = make_response(render_template("join.html", info=info, principal=None), status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
