"""Turning stored notifications back into domain events, fast.

Why not only the store's mapper: its JSON transcoder calls a Python hook for
every JSON object, which made decoding the largest cost of a catch-up.  The
events the views read hold one transcoded value only — the ``timestamp`` — so
the fast path parses with the C JSON decoder, converts that one value, applies
the class's upcasters exactly as the mapper does, and builds the event the same
way (``object.__new__`` + ``__dict__``).

Personal data (R24) is opened here as the mapper opens it
(``ledger.personal_data.open_state``); :meth:`EventDecoder.prepare` reads a
batch's keys in one query first, so a view never shows data erased meanwhile.

Whenever anything is unusual — a cipher or compressor configured, another
transcoded value in the state, an id that is not a UUID — it falls back to the
mapper itself, so the result is always what the mapper would have produced
(checked against the mapper in tests/integration/projections/).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.persistence import JSONTranscoder, Mapper, Notification

from ledger.personal_data import PERSONAL_FIELDS, Keyring, open_state

_MARKER = b'"_type_"'
_scan = json.JSONDecoder().raw_decode  # the C scanner, without json.loads' sniffing and regexes


class EventDecoder:
    def __init__(self, mapper: Mapper[UUID]) -> None:
        self.mapper = mapper
        keyring = getattr(mapper, "keyring", None)
        self.keyring: Keyring | None = keyring if isinstance(keyring, Keyring) else None
        transcoder = mapper.transcoder
        self.fast = (
            mapper.cipher is None
            and mapper.compressor is None
            and isinstance(transcoder, JSONTranscoder)
            and "datetime_iso" in transcoder.names
        )

    def prepare(self, notifications: Sequence[Notification], classes: Mapping[str, type[Any]]) -> None:
        """Read the data keys of the personal events among ``notifications``
        (topic → class in ``classes``) in one query, fresh from the database."""
        if self.keyring is not None:
            self.keyring.refresh(str(n.originator_id) for n in notifications
                                 if classes.get(n.topic) in PERSONAL_FIELDS)

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
        if cls in PERSONAL_FIELDS:
            open_state(state, cls, notification.originator_id, notification.originator_version, self.keyring)
        # Upcasting, as Mapper.to_domain_event does it.
        class_version = getattr(cls, "class_version", 1)
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event
