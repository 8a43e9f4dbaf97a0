"""Turning stored notifications back into domain events, fast.

Why not only the store's mapper: its JSON transcoder calls a Python hook for
every JSON object, which made decoding the largest cost of a catch-up.  The
events the views read hold one transcoded value only — the ``timestamp`` — so
the fast path parses with the C JSON decoder, converts that one value, applies
the class's upcasters exactly as the mapper does, and builds the event the same
way (``object.__new__`` + ``__dict__``).

Whenever anything is unusual — a cipher or compressor configured, another
transcoded value in the state, an id that is not a UUID — it falls back to the
mapper itself, so the result is always what the mapper would have produced
(checked against the mapper in tests/integration/projections/).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Mapper, Notification

_MARKER = b'"_type_"'
_scan = json.JSONDecoder().raw_decode  # the C scanner, without json.loads' sniffing and regexes


class EventDecoder:
    def __init__(self, mapper: Mapper[UUID]) -> None:
        self.mapper = mapper
        transcoder = mapper.transcoder
        self.fast = (
            mapper.cipher is None
            and mapper.compressor is None
            and isinstance(transcoder, JSONTranscoder)
            and "datetime_iso" in transcoder.names
        )

    def decode(self, notification: Notification, cls: type[Any]) -> Any:
        """The domain event of ``notification``, whose topic resolves to ``cls``."""
        state_bytes = notification.state
        if not self.fast or state_bytes.count(_MARKER) != 1 or not isinstance(notification.originator_id, UUID):
            return self.mapper.to_domain_event(notification)
        text = state_bytes.decode("utf-8")
        state, end = _scan(text)
        stamp = state.get("timestamp") if isinstance(state, dict) else None
        if (end != len(text) or not isinstance(stamp, dict) or stamp.get("_type_") != "datetime_iso"
                or len(stamp) != 2):
            return self.mapper.to_domain_event(notification)
        state["timestamp"] = datetime.fromisoformat(stamp["_data_"])
        state["originator_id"] = notification.originator_id
        state["originator_version"] = notification.originator_version
        # Upcasting, as Mapper.to_domain_event does it.
        class_version = getattr(cls, "class_version", 1)
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event
