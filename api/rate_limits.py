"""Per-client limits on the public operations (API.md "Rate limits", R20).

Anyone may register, restart a checkout, check a join token, come back from a
provider or try to sign in -- so one client must not be able to hold every
seat of an event, make the organizer's provider key answer for a flood of
return-page hits, or guess tokens.  Each operation below has a limit per
client (``LEDGER_RATE_LIMIT_<NAME>``, ``limits`` notation, "off" lifts it);
over it the answer is 429 problem+json ``rate_limited`` with ``Retry-After``.

How (Flask-Limiter, fixed windows):

* **Which operations** is an explicit list of endpoints (:data:`LIMITED`); a
  renamed endpoint fails at start-up instead of silently losing its limit.
  Endpoints sharing a name (the join API and page, return and cancel) share
  one counter.  HEAD counts as GET (it runs the same view).
* **Before anything else**: the limits are checked in the first
  ``before_request`` hook, so a refused request claims no ``Idempotency-Key``
  (a 429 is never stored and replayed: the same key works after
  ``Retry-After``), passes no CSRF check and touches nothing.
* **Who is a client**: the peer address, or with ``LEDGER_TRUSTED_PROXIES=n``
  the n-th address from the right of ``X-Forwarded-For`` (what ProxyFix
  would take); an IPv6 client is its /64, which one host can fill at will.
* **Where the counters live**: by default PostgreSQL
  (:mod:`ledger.rate_limit_counters`), so every API process behind the same
  address counts into one window.  ``LEDGER_RATE_LIMIT_STORAGE=memory`` keeps
  them per process instead (N processes then allow N times the limit).
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, g, request
from flask_limiter import ApplicationLimit, Limiter, RequestLimit
from limits.storage import Storage

from ledger import rate_limit_counters
from ledger.database import Database
from ledger.errors import RateLimited

if TYPE_CHECKING:
    from ledger.container import Ledger

#: (limit name in ``Settings.rate_limits``, endpoint, methods) of every public operation.
LIMITED: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("registration", "registrations.Registrations", ("post",)),
    ("checkout", "webhooks.RetryCheckout", ("post",)),
    ("join", "join.Join", ("get", "head")),
    ("join", "join_page.join", ("get", "head")),
    ("return", "webhooks.ParticipantReturn", ("get", "head")),
    ("return", "webhooks.ParticipantCancel", ("get", "head")),
    ("sign_in", "pages.login", ("post",)),
)

OFF = frozenset({"", "off", "none", "0"})


class PostgresCounters(Storage):
    """``limits`` storage over :mod:`ledger.rate_limit_counters` (fixed windows only)."""

    STORAGE_SCHEME = ["ledger+postgresql"]  # noqa: RUF012  (the base class declares it a list)

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        db = options.pop("db")
        if not isinstance(db, Database):
            raise TypeError("PostgresCounters needs storage_options={'db': Database}")
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.db = db

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return rate_limit_counters.StoreError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return rate_limit_counters.hit(self.db, key, expiry, amount)

    def get(self, key: str) -> int:
        return rate_limit_counters.hits(self.db, key)

    def get_expiry(self, key: str) -> float:
        return rate_limit_counters.window_end(self.db, key)

    def check(self) -> bool:
        return rate_limit_counters.healthy(self.db)

    def reset(self) -> int | None:
        return rate_limit_counters.clear_all(self.db)

    def clear(self, key: str) -> None:
        rate_limit_counters.clear(self.db, key)


def client_key(trusted_proxies: int) -> Any:
    """The function naming the client of the current request."""

    def key() -> str:
        address = request.remote_addr or ""
        if trusted_proxies > 0:
            forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",") if a.strip()]
            if len(forwarded) >= trusted_proxies:
                address = forwarded[-trusted_proxies]
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return address[:64] or "unknown"
        if parsed.version == 6:
            return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
        return str(parsed)

    return key


def _breached(limit: RequestLimit) -> None:
    retry_after = max(1, math.ceil(limit.window.reset_time - time.time()))
    g.rate_limit_retry_after = retry_after
    raise RateLimited(
        f"more than {limit.limit} from this client; retry in {retry_after} s", retry_after=retry_after
    )


def _retry_after(response: Response) -> Response:
    """``Retry-After`` on the 429, however it was rendered (problem+json or a page)."""
    retry_after = g.pop("rate_limit_retry_after", None)
    if retry_after is not None and response.status_code == 429:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _applies_only_to(endpoints: frozenset[str]) -> Any:
    def exempt() -> bool:
        return request.endpoint not in endpoints

    return exempt


def register(app: Flask, ledger: Ledger) -> Limiter:
    """Limit every :data:`LIMITED` endpoint of ``app``.  Call it after the
    blueprints are registered and before any other ``before_request`` hook."""
    settings = ledger.settings
    if settings.rate_limit_storage == "memory":
        storage_uri, options = "memory://", {}
    elif settings.rate_limit_storage == "postgresql":
        storage_uri, options = "ledger+postgresql://", {"db": ledger.db}
    else:
        raise ValueError(f"LEDGER_RATE_LIMIT_STORAGE must be postgresql or memory, not {settings.rate_limit_storage!r}")
    groups: dict[str, tuple[set[str], set[str]]] = {}
    for name, endpoint, methods in LIMITED:
        if endpoint not in app.view_functions:
            raise KeyError(f"rate limit {name!r} names no endpoint {endpoint!r}")
        endpoints, verbs = groups.setdefault(name, (set(), set()))
        endpoints.add(endpoint)
        verbs.update(methods)
    active = {
        name: value for name in groups
        if (value := settings.rate_limits.get(name, "off").strip()).lower() not in OFF
    }
    limits: list[str | Callable[[], str] | ApplicationLimit] = [
        ApplicationLimit(
            limit_provider=active[name], scope=name, methods=sorted(verbs),
            exempt_when=_applies_only_to(frozenset(endpoints)),
        )
        for name, (endpoints, verbs) in groups.items()
        if name in active
    ]
    limiter = Limiter(
        client_key(settings.trusted_proxies),
        application_limits=limits,
        storage_uri=storage_uri,
        storage_options=options,  # type: ignore[arg-type]  # the storage's own keyword
        strategy="fixed-window",
        headers_enabled=False,
        on_breach=_breached,
    )
    limiter.init_app(app)  # its check is the first before_request hook of the app
    limited = frozenset(e for name in active for e in groups[name][0])
    app.extensions["rate_limited_endpoints"] = limited  # read by api.registration_fast_path
    _check_only(app, limiter, limited)
    app.after_request(_retry_after)
    return limiter


def _check_only(app: Flask, limiter: Limiter, endpoints: frozenset[str]) -> None:
    """Run Flask-Limiter's hooks only for the endpoints with a limit on.

    Its check runs on every request and cost about a tenth of a
    registration's CPU even when nothing applies (it gathers and filters every
    limit, docs/performance.md); its ``after_request`` (headers, which are off,
    and conditional deductions, which we do not use) and ``teardown_request``
    (reset of its per-request state) only act on what that check recorded,
    yet created that state on every request.  The endpoints that have a limit
    are known here, so every other request skips all three.  Each hook keeps
    its place (the check first); a Flask-Limiter whose hooks are not found
    fails here, at start-up."""
    before = app.before_request_funcs.setdefault(None, [])
    after = app.after_request_funcs.setdefault(None, [])
    teardown = app.teardown_request_funcs.setdefault(None, [])
    check = limiter._check_request_limit
    [inject] = [f for f in after if isinstance(f, partial) and f.args == (limiter,)]
    release = limiter._Limiter__release_context  # type: ignore[attr-defined]  # its teardown hook

    def check_limited() -> None:
        if request.endpoint in endpoints:
            check()

    def inject_limited(response: Response) -> Response:
        return inject(response) if request.endpoint in endpoints else response

    def release_limited(exc: BaseException | None = None) -> None:
        if request.endpoint in endpoints:
            release(exc)

    before[before.index(check)] = check_limited
    after[after.index(inject)] = inject_limited
    teardown[teardown.index(release)] = release_limited
