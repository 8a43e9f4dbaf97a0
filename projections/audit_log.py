"""The event log for finance and auditors: every stored event in global order,
as ``GET /v1/ledger/events?after=&limit=`` serves it.

Read straight from the event store (not from a projection): the auditor must
see the facts themselves, the same bytes every time, with nothing a view could
have dropped.  Items carry position, event id (stable uuid5 of aggregate id
and version), public type, aggregate type/id/version, organizer, time, schema
version and data.  Secrets never reach events (provider credentials live
encrypted in ``provider_secrets``); as a safety net any field named like a
credential outside the ``masked`` summary is redacted here too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledger import event_log
from ledger.proof import queries as proof_queries
from projections.paging import Page, parse_limit, parse_position

if TYPE_CHECKING:
    from ledger.container import Ledger

SECRET_FIELDS = frozenset({
    "api_key", "secret_key", "client_secret", "second_key", "webhook_secret", "password", "token",
    "access_token", "md5_key",
})
REDACTED = "[redacted]"


def redact(data: Any) -> Any:
    """A copy of ``data`` with credential-named fields redacted (``masked``
    summaries, which already hide the secret, are kept for the audit trail)."""
    if isinstance(data, dict):
        return {
            k: (v if k == "masked" else REDACTED if k in SECRET_FIELDS else redact(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def page(ledger: Ledger, *, after: str | int | None = None, limit: str | int | None = None) -> Page:
    """Events with position > ``after``.  ``next`` is the last position when the
    page is full (more may follow), ``None`` when the log is exhausted for now;
    a follower keeps polling with the last position it saw."""
    position = parse_position(after)
    size = parse_limit(limit)
    items = event_log.read(ledger.store, after=position, limit=size)
    with ledger.db.transaction() as conn:
        hashes = proof_queries.chain_hashes(conn, [item.position for item in items])
    found = []
    for item in items:
        entry = item.as_dict(include_pii=True)
        entry["data"] = redact(entry["data"])
        # R23: the chain hash once the sealer reached it (about a second), else null.
        entry["hash"] = hashes.get(item.position)
        found.append(entry)
    following = str(items[-1].position) if len(items) == size else None
    return Page(items=found, next=following)
