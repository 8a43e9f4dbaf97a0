"""The paid-events list query: newest first, keyset pages without gaps or
repeats, one organizer's events only, malformed cursors refused."""

from __future__ import annotations

import pytest

from ledger.container import Ledger
from ledger.scope import ANYONE, Scope
from projections import paid_events_query
from projections.paging import InvalidCursor
from tests.integration.projections.history import organizer_with_event, project


def test_pages_run_newest_first_without_gaps_or_repeats(fresh_ledger: Ledger) -> None:
    created = [organizer_with_event(fresh_ledger) for _ in range(5)]
    project(fresh_ledger)
    seen, after, pages = [], None, 0
    while True:
        rows, after = paid_events_query.newest_first(fresh_ledger.db, ANYONE, after=after, limit=2)
        seen += [str(r.event_id) for r in rows]
        pages += 1
        if after is None:
            break
    assert seen == [event_id for _, event_id in reversed(created)] and pages == 3
    org_id, event_id = created[2]
    own, following = paid_events_query.newest_first(fresh_ledger.db, Scope(org_id), after=None, limit=10)
    assert [str(r.event_id) for r in own] == [event_id] and following is None
    assert own[0].organizer_id == org_id and own[0].status == "scheduled"


def test_a_malformed_cursor_is_refused(fresh_ledger: Ledger) -> None:
    with pytest.raises(InvalidCursor):
        paid_events_query.newest_first(fresh_ledger.db, ANYONE, after="not-a-cursor", limit=10)
