"""Sign in with a token, sign out, and the landing page."""

from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from api.pages import session_auth
from api.pages.blueprint import bp


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
        errors = {"token": ["Paste the token you were given (it starts with ldg_)."]}
        return render_template("login.html", next=target, errors=errors), 422
    principal = session_auth.sign_in(token)
    if principal is None:
        errors = {"token": ["This token is not valid or has been revoked."]}
        return render_template("login.html", next=target, errors=errors), 401
    flash(f"Signed in as {principal.role}.", "ok")
    return redirect(target or session_auth.home_for(principal), 303)


@bp.post("/logout")
def logout() -> Response | BaseResponse:
    session_auth.sign_out()
    flash("Signed out.", "ok")
    return redirect(url_for("pages.login"), 303)
