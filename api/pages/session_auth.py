"""Signing people in to the pages, and CSRF protection for every form.

Why a session cookie instead of the bearer token: a browser cannot attach an
``Authorization`` header to a plain form post.  The person pastes a token once;
the cookie then holds a *signed* session with a random session id and the
token's SHA-256 (the same hash ``api_tokens`` stores) — never the raw token, so
a leaked cookie or log line cannot be replayed against the API.

The session lives on the server too (``ledger.page_sessions``): every request
checks that its session is still on and its token not revoked, with no cache,
so signing out (or revoking the token) ends the session at once for every copy
of the cookie — a cookie copied before ``POST /app/logout`` gets the sign-in
page afterwards.

The cookie is HttpOnly (scripts cannot read it), SameSite=Lax (other sites'
forms do not carry it), Secure when the ledger is served over https, and scoped
to ``/app`` so API calls never carry it.  SameSite is defence in depth: every
POST must also carry the per-session random CSRF token.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, Request, Response, abort, g, has_request_context, redirect, request, session, url_for
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin

from api.auth import RequestPrincipal
from api.context import current_ledger
from ledger import api_tokens, page_sessions
from ledger.config import Settings

F = TypeVar("F", bound=Callable[..., Any])

COOKIE_NAME = "ledger_session"
SESSION_LIFETIME = timedelta(hours=8)
CSRF_FIELD = "csrf_token"
#: Domain separation: the session-signing key is derived from LEDGER_SECRET_KEY
#: but can never equal a key the ledger uses for anything else (SecretBox).
_KEY_CONTEXT = b"webinar-ledger/pages/session-signing/v1"
#: The cookie's key naming the server-side session (``ledger.page_sessions``).
SESSION_ID = "sid"

#: Roles allowed to change things through the pages (as in the API, admin may
#: do what an organizer may; finance is read-only everywhere).
ACTING_ROLES = ("organizer", "admin")


class _PageSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, Secure also when the request itself came
    over https (behind a TLS-terminating proxy that sets the scheme)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        secure = bool(app.config["SESSION_COOKIE_SECURE"])
        return secure or (has_request_context() and request.is_secure)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        """Flask's, but a request without the cookie -- every API call (the
        cookie is scoped to ``/app``) -- gets its new empty session at once:
        Flask built the signing serializer first, a tenth of the ``/healthz``
        floor.  With the cookie, Flask's own path (signature, max age)."""
        if app.secret_key and (
            not request.environ.get("HTTP_COOKIE") or not request.cookies.get(self.get_cookie_name(app))
        ):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        """Flask's, skipped for a session nobody touched that is still empty:
        Flask would only work out the cookie's attributes and return (no
        cookie, no ``Vary: Cookie``)."""
        if not session and not session.accessed and not session.modified:
            return
        super().save_session(app, session, response)


def derive_secret(master: bytes) -> bytes:
    return hmac.new(master, _KEY_CONTEXT, hashlib.sha256).digest()


def configure(app: Flask, settings: Settings) -> None:
    app.secret_key = derive_secret(settings.secret_key)
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.public_url.startswith("https://"),
        SESSION_COOKIE_PATH="/app",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
    )
    app.session_interface = _PageSessionInterface()


# --- who is signed in ------------------------------------------------------------


def _session_principal() -> api_tokens.Principal | None:
    """The server's answer for this request's session, asked once per request."""
    if "page_principal" not in g:
        session_id = session.get(SESSION_ID)
        g.page_principal = (
            page_sessions.principal(current_ledger().db, session_id) if isinstance(session_id, str) else None
        )
    found: api_tokens.Principal | None = g.page_principal
    return found


def current_user() -> RequestPrincipal | None:
    """The signed-in principal, or None (also when the session was signed
    out or its token revoked)."""
    token_hash = session.get("th")
    if not isinstance(token_hash, str) or not isinstance(session.get(SESSION_ID), str):
        return None
    principal = _session_principal()
    if principal is not None:
        from ledger.actor import current_actor

        current_actor.set(f"{principal.role}:{token_hash[:12]}")  # this request's actor, for the audit log
    if principal is None:
        session.clear()
        return None
    return RequestPrincipal(principal.role, principal.organizer_id)


def sign_in(token: str) -> RequestPrincipal | None:
    """Start a fresh session for ``token``; None when it is not a valid token.
    The old session is dropped first (no session fixation)."""
    principal = api_tokens.lookup(current_ledger().db, token.strip())
    if principal is None:
        return None
    language = session.get("lang")  # the person's own language choice outlives sessions
    session.clear()
    if isinstance(language, str):
        session["lang"] = language
    g.pop("page_principal", None)
    token_hash = api_tokens.hash_token(token.strip())
    session.permanent = True
    session[SESSION_ID] = page_sessions.open_session(
        current_ledger().db, token_hash=token_hash, lifetime=SESSION_LIFETIME
    )
    session["th"] = token_hash
    session["role"] = principal.role
    session["org"] = principal.organizer_id
    if principal.organizer_id:  # the pages' language follows the organizer's country (api.pages.i18n)
        session["country"] = current_ledger().service.organizer(principal.organizer_id).country
    session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return RequestPrincipal(principal.role, principal.organizer_id)


def sign_out() -> None:
    """End the session on the server (every copy of the cookie), then here."""
    session_id = session.get(SESSION_ID)
    if isinstance(session_id, str):
        page_sessions.revoke(current_ledger().db, session_id)
    g.pop("page_principal", None)
    language = session.get("lang")
    session.clear()
    if isinstance(language, str):
        session["lang"] = language


def session_credential() -> str:
    """Who submits a form, for once-only submissions: the token hash's hash
    (sessions of the same token share their submissions, like API callers)."""
    return "pages:" + hashlib.sha256(str(session.get("th", "")).encode()).hexdigest()


def home_for(principal: RequestPrincipal) -> str:
    if principal.role == "organizer":
        return url_for("pages.events")
    return url_for("pages.fee_report")


def safe_next(target: str | None) -> str | None:
    """Only a path inside the pages: never an open redirect to another site."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/app/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(ch) < 32 for ch in target):
        return None
    return target


def signed_in(*roles: str) -> Callable[[F], F]:
    """Require a session of one of ``roles``; otherwise go to the login form
    (and come back afterwards).  Sets ``g.principal`` like ``api.auth``."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_user()
            if principal is None:
                return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
            if roles and principal.role not in roles:
                abort(403)
            g.principal = principal
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def can_act() -> bool:
    principal = getattr(g, "principal", None)
    return principal is not None and principal.role in ACTING_ROLES


# --- CSRF ------------------------------------------------------------------------------


def csrf_token() -> str:
    """The session's CSRF token, created on first use (also before login, so
    the login form itself is protected against login CSRF)."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Every POST to the pages must echo the session's token (constant-time
    comparison).  Refused with 400 and a readable page otherwise."""
    if request.method not in ("POST", "PUT", "PATCH", "DELETE"):
        return
    expected = session.get(CSRF_FIELD)
    sent = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(sent.encode(), expected.encode()):
        from api.pages.i18n import _

        abort(400, description=_("This form has expired or did not come from this site. "
                                 "Reload the page and try again."))
