"""Bearer-token roles: admin, finance (read-only, every organizer), organizer
(its own organizer only).  Public endpoints simply do not use ``authenticated``."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import g, request

from api.context import current_ledger
from ledger import api_tokens
from ledger.actor import acting_as
from ledger.errors import Forbidden, Unauthenticated
from ledger.scope import Scope

F = TypeVar("F", bound=Callable[..., Any])

_CACHE_SECONDS = 5.0
_cache: dict[str, tuple[float, api_tokens.Principal | None]] = {}


@dataclass(frozen=True)
class RequestPrincipal:
    role: str
    organizer_id: str | None
    token_id: str = ""  # first 12 hex digits of the token's SHA-256 (for the audit log)

    @property
    def scope(self) -> Scope:
        """Organizers see their own data; admin and finance see everyone's."""
        return Scope(self.organizer_id if self.role == "organizer" else None)

    def check_organizer(self, organizer_id: str) -> None:
        if self.role == "organizer" and self.organizer_id != organizer_id:
            from ledger.errors import NotFound

            raise NotFound(f"no organizer {organizer_id}")


def _principal_for(token: str) -> api_tokens.Principal | None:
    """Token lookups are cached for a few seconds: revocation takes effect
    within ``_CACHE_SECONDS``."""
    now = time.monotonic()
    hit = _cache.get(token)
    if hit and now - hit[0] < _CACHE_SECONDS:
        return hit[1]
    principal = api_tokens.lookup(current_ledger().db, token)
    if len(_cache) > 10_000:
        _cache.clear()
    _cache[token] = (now, principal)
    return principal


def current_principal() -> RequestPrincipal | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    principal = _principal_for(token.strip())
    if principal is None:
        return None
    return RequestPrincipal(principal.role, principal.organizer_id, api_tokens.hash_token(token.strip())[:12])


def authenticated(*roles: str) -> Callable[[F], F]:
    """Require a valid token of one of ``roles`` (admin is always allowed);
    finance is refused on anything but reads."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                raise Unauthenticated("a valid bearer token is required")
            if principal.role != "admin" and principal.role not in roles:
                raise Forbidden(f"the {principal.role} role cannot do this")
            if principal.role == "finance" and request.method not in ("GET", "HEAD"):
                raise Forbidden("the finance role is read-only")
            g.principal = principal
            with acting_as(f"{principal.role}:{principal.token_id}"):
                return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
