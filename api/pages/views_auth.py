"""Sign in with a token, sign out, and the landing page."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from api.pages import session_auth
from api.pages.blueprint import bp
from api.pages.i18n import CHOICE, LANGUAGES, _, role_name


@bp.get("/language/<code>")
def language(code: str) -> BaseResponse:
    """The language switch: the choice is kept in the page session cookie
    (a preference, not a change to the ledger) and wins over the organizer's
    country and the browser's languages."""
    if code in LANGUAGES:
        session[CHOICE] = code
    return redirect(session_auth.safe_next(request.args.get("next")) or url_for("pages.home"), 303)


@bp.get("/")
def home() -> BaseResponse:
    principal = session_auth.current_user()
    if principal is None:
        return redirect(url_for("pages.login"))
    return redirect(session_auth.home_for(principal))


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | BaseResponse | tuple[str, int]:
    """The token is read from the form body (never the URL, so it does not end
    up in logs or history) and forgotten once its hash is in the session."""
    target = session_auth.safe_next(request.values.get("next"))
    if request.method == "GET":
        principal = session_auth.current_user()
        if principal is not None:
            return redirect(target or session_auth.home_for(principal))
        return render_template("login.html", next=target, errors={})
    token = request.form.get("token", "").strip()
    if not token:
        errors = {"token": [_("Paste the token you were given (it starts with ldg_).")]}
        return render_template("login.html", next=target, errors=errors), 422
    principal = session_auth.sign_in(token)
    if principal is None:
        errors = {"token": [_("This token is not valid or has been revoked.")]}
        return render_template("login.html", next=target, errors=errors), 401
    flash(_("Signed in as %(role)s.", role=role_name(principal.role)), "ok")
    return redirect(target or session_auth.home_for(principal), 303)


@bp.post("/logout")
def logout() -> Response | BaseResponse:
    session_auth.sign_out()
    flash(_("Signed out."), "ok")
    return redirect(url_for("pages.login"), 303)
