"""The public shape of stored events: the finance event log, Kafka messages and
every worker read events through here.

An event's public ``type`` is a stable past-tense name (``PaymentRecorded``),
decoupled from Python class paths, and its ``id`` is derived from the aggregate
id and version (uuid5) so that it is the same every time the event is read —
consumers de-duplicate on it.  Secrets never appear: provider credentials are
kept outside the event store (see ``ledger.secret_box``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Notification
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.utils import get_topic
from psycopg import sql
from psycopg.rows import tuple_row

from ledger.application import LedgerStore
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.personal_data import PERSONAL_FIELDS, close_state, open_state

EVENT_ID_NAMESPACE = UUID("6f1c1f6e-8f57-4a53-9d0e-2b6c8a6d1c11")
_NAMESPACE_BYTES = EVENT_ID_NAMESPACE.bytes

#: event class → (public type, aggregate type).  Adding an event class means
#: adding it here, to docs/events.md and to docs/schemas/.
PUBLIC_TYPES: dict[type[Any], tuple[str, str]] = {
    Organizer.Registered: ("OrganizerRegistered", "organizer"),
    Organizer.PlanChanged: ("PlanChanged", "organizer"),
    Organizer.ProviderConnected: ("ProviderConnected", "organizer"),
    Organizer.ContactChanged: ("OrganizerContactChanged", "organizer"),
    PaidEvent.Created: ("PaidEventCreated", "paid_event"),
    PaidEvent.DetailsEdited: ("EventDetailsEdited", "paid_event"),
    PaidEvent.Rescheduled: ("EventRescheduled", "paid_event"),
    PaidEvent.Cancelled: ("EventCancelled", "paid_event"),
    PaidEvent.SeatHeld: ("SeatHeld", "paid_event"),
    PaidEvent.SeatSold: ("SeatSold", "paid_event"),
    PaidEvent.SeatReleased: ("SeatReleased", "paid_event"),
    Registration.Registered: ("ParticipantRegistered", "registration"),
    Registration.CheckoutStarted: ("CheckoutStarted", "registration"),
    Registration.PaymentRecorded: ("PaymentRecorded", "registration"),
    Registration.PaymentFailed: ("PaymentFailed", "registration"),
    Registration.PaymentMismatched: ("PaymentMismatched", "registration"),
    Registration.Confirmed: ("ParticipantConfirmed", "registration"),
    Registration.Rejected: ("ParticipantRejected", "registration"),
    Registration.Cancelled: ("RegistrationCancelled", "registration"),
    Registration.ConfirmationResendRequested: ("ConfirmationResendRequested", "registration"),
    Registration.RefundRecorded: ("RefundRecorded", "registration"),
    Registration.EmailDeliveryFailed: ("EmailDeliveryFailed", "registration"),
    Registration.PersonalDataErased: ("PersonalDataErased", "registration"),
    Registration.PaymentDisputed: ("PaymentDisputed", "registration"),
    Registration.DisputeFundsWithdrawn: ("DisputeFundsWithdrawn", "registration"),
    Registration.DisputeFundsReinstated: ("DisputeFundsReinstated", "registration"),
    Registration.DisputeResolved: ("DisputeResolved", "registration"),
    Registration.PaymentReversed: ("PaymentReversed", "registration"),
    Registration.RefundFailed: ("RefundFailed", "registration"),
    Registration.PaymentAuthorized: ("PaymentAuthorized", "registration"),
}

TYPE_NAMES = {public: cls for cls, (public, _) in PUBLIC_TYPES.items()}

#: Participants' personal data on registration events: left out of Kafka unless
#: LEDGER_KAFKA_INCLUDE_PII=1.  (An organizer's ``name`` is a business name, kept.)
PII_FIELDS = frozenset({"name", "email", "fields"})

_ENVELOPE_FIELDS = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic", "actor"})


def event_id(aggregate_id: UUID | str, version: int) -> str:
    """``uuid5(EVENT_ID_NAMESPACE, "<aggregate id>:<version>")``, computed
    as RFC 4122 does without building a ``UUID`` (the relay computes one per
    message; ``uuid.uuid5`` costs several times more)."""
    name = f"{aggregate_id}:{version}".encode()
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True)
class LogItem:
    position: int
    id: str
    type: str
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    organizer_id: str
    occurred_at: datetime
    schema_version: int
    data: dict[str, Any]
    domain_event: Any
    actor: str = "system"

    def as_dict(self, *, include_pii: bool = True) -> dict[str, Any]:
        personal = not include_pii and self.aggregate_type == "registration"
        data = {k: v for k, v in self.data.items() if k not in PII_FIELDS} if personal else self.data
        return {
            "position": self.position,
            "id": self.id,
            "type": self.type,
            "aggregate_type": self.aggregate_type,
            "aggregate_id": self.aggregate_id,
            "aggregate_version": self.aggregate_version,
            "organizer_id": self.organizer_id,
            "occurred_at": self.occurred_at.isoformat(),
            "schema_version": self.schema_version,
            "actor": self.actor,
            "data": data,
        }


_PLAIN = frozenset({str, int, bool, type(None)})


def _jsonable(value: Any) -> Any:
    if type(value) in _PLAIN:  # most values: one set lookup instead of four isinstance checks
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


_organizer_cache: dict[str, str] = {}


def organizer_id_of(store: LedgerStore, aggregate_id: str) -> str:
    """The organizer an aggregate belongs to, read from its first event (which
    always names it) and cached: aggregates never change owner."""
    found = _organizer_cache.get(aggregate_id)
    if found is None:
        first = store.recorder.select_events(UUID(aggregate_id), lte=1, limit=1)
        if not first:
            return ""
        created: Any = store.mapper.to_domain_event(first[0])
        found = aggregate_id if isinstance(created, Organizer.Registered) else str(created.organizer_id)
        if len(_organizer_cache) > 100_000:
            _organizer_cache.clear()
        _organizer_cache[aggregate_id] = found
    return found


def to_item(store: LedgerStore, notification: Notification) -> LogItem:
    domain_event: Any = store.mapper.to_domain_event(notification)
    public_type, aggregate_type = PUBLIC_TYPES[type(domain_event)]
    data = {k: _jsonable(v) for k, v in domain_event.__dict__.items() if k not in _ENVELOPE_FIELDS}
    aggregate_id = str(notification.originator_id)
    if aggregate_type == "organizer":
        organizer_id = aggregate_id
    elif "organizer_id" in data:
        organizer_id = _organizer_cache.setdefault(aggregate_id, str(data["organizer_id"]))
    else:
        organizer_id = organizer_id_of(store, aggregate_id)
    return LogItem(
        position=notification.id,
        id=event_id(aggregate_id, notification.originator_version),
        type=public_type,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        aggregate_version=notification.originator_version,
        organizer_id=organizer_id,
        occurred_at=domain_event.timestamp,
        schema_version=getattr(type(domain_event), "class_version", 1),
        data=data,
        domain_event=domain_event,
        actor=str(domain_event.__dict__.get("actor", "system")),
    )


@dataclass(frozen=True)
class PublicType:
    """What the public envelope says about an event class, computed once."""

    cls: type[Any]
    name: str  #: the public ``type``
    aggregate_type: str
    schema_version: int  #: the class's ``class_version``


#: Stored topic → public type, for :class:`EnvelopeDecoder` (a topic stored
#: under an older name is absent: it takes the mapper's path, which resolves it).
PUBLIC_BY_TOPIC: dict[str, PublicType] = {
    get_topic(cls): PublicType(cls, public, aggregate, getattr(cls, "class_version", 1))
    for cls, (public, aggregate) in PUBLIC_TYPES.items()
}

_TRANSCODED = b'"_type_"'

#: Stored topics of the events that carry sealed personal data (R24).
PERSONAL_TOPICS = frozenset(get_topic(cls) for cls in PERSONAL_FIELDS)


class _Unusual(Exception):
    """A stored state the fast path does not handle: take the mapper's path."""


def _public_value(value: Any) -> Any:
    """A decoded JSON value as ``_jsonable`` shows the mapper's decoded value:
    the transcoded objects (``{"_type_": …, "_data_": …}``, which the mapper's
    transcoder turns into UUIDs and datetimes) become their public strings."""
    kind = type(value)
    if kind is dict:
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            name, data = value["_type_"], value["_data_"]
            if name == "datetime_iso" and type(data) is str:
                return datetime.fromisoformat(data).isoformat()
            if name == "uuid_hex" and type(data) is str:
                return str(UUID(data))
            raise _Unusual(name)
        return {k: _public_value(v) for k, v in value.items()}
    if kind is list:
        return [_public_value(v) for v in value]
    return value


class EnvelopeDecoder:
    """The public envelope of a stored event (``to_item(...).as_dict(...)``,
    key for key and in the same order) read straight from its stored JSON.

    Why: the relay needs the envelope, not the domain event.  The mapper's
    transcoder calls a Python hook for every JSON object, then the event object
    is built and ``_jsonable`` walks it back into JSON values.  Here orjson
    parses the state once and only the transcoded values are converted -- when
    the state holds no transcoded value but the timestamp (found by counting
    ``"_type_"`` in the bytes), nothing is walked at all.

    Personal data (R24): :meth:`prepare` reads the batch's keys fresh first,
    as :func:`prepare_keys` does for the mapper's path, so an erasure made by
    another process always shows.  Fields the envelope shows are opened by the
    same :func:`ledger.personal_data.open_state` the mapper calls.  Without
    ``include_pii``, a registration's personal fields are never shown, so they
    are not opened at all (:func:`ledger.personal_data.close_state`: ``erased``
    from whether the key is still there, nothing decrypted).

    Anything unusual -- a cipher or compressor, a state of an older class
    version (upcasters expect the mapper's decoded values), another transcoded
    type, JSON orjson refuses, a topic stored under another name -- returns
    ``None``, and the caller takes the mapper's path (:func:`to_item`), so the
    result is always the mapper's (tests/integration/relay/test_relay_encoding.py).
    """

    def __init__(self, store: LedgerStore, *, include_pii: bool) -> None:
        self.store, self.include_pii = store, include_pii
        mapper = store.mapper
        self.keyring = store.keyring
        self.enabled = (
            mapper.cipher is None and mapper.compressor is None and isinstance(mapper.transcoder, JSONTranscoder)
        )
        #: Stored topics whose personal fields the envelope never shows (only ``erased``).
        self.closed_topics = frozenset() if include_pii else frozenset(
            topic for topic, public in PUBLIC_BY_TOPIC.items()
            if public.aggregate_type == "registration" and public.cls in PERSONAL_FIELDS
            and PII_FIELDS.issuperset(PERSONAL_FIELDS[public.cls])
        )

    def prepare(self, notifications: Sequence[Notification]) -> dict[str, bool]:
        """Read the keys the batch's personal events need, fresh, in at most
        two queries: the keys to open with (cached in the keyring) and, for
        the events whose personal fields are not shown, only whether each key
        is still there -- the ``holds_key`` map :meth:`envelope` takes."""
        keyring = self.keyring
        if keyring is None:
            return {}
        opened: list[str] = []
        closed: list[str] = []
        for n in notifications:
            if n.topic in PERSONAL_TOPICS:
                (closed if n.topic in self.closed_topics else opened).append(str(n.originator_id))
        keyring.refresh(opened)
        return keyring.holds_keys(closed)

    def envelope(
        self, notification: Notification, holds_key: Mapping[str, bool],
    ) -> tuple[PublicType, dict[str, Any]] | None:
        """(public type, envelope) of ``notification`` of a batch given to
        :meth:`prepare` (``holds_key`` is its answer), or ``None`` for the
        mapper's path."""
        public = PUBLIC_BY_TOPIC.get(notification.topic)
        if public is None or not self.enabled:
            return None
        raw = notification.state
        try:
            state = orjson.loads(raw)
            if type(state) is not dict or state.pop("class_version", 1) != public.schema_version:
                return None
            stamp = state.get("timestamp")
            if type(stamp) is not dict or stamp.get("_type_") != "datetime_iso" or len(stamp) != 2:
                return None
            if raw.count(_TRANSCODED) != 1:  # more than the timestamp is transcoded
                state = {k: _public_value(v) for k, v in state.items()}
            occurred_at = state["timestamp"]
            occurred_at = occurred_at if type(occurred_at) is str else _public_value(occurred_at)
        except (orjson.JSONDecodeError, _Unusual, ValueError, TypeError):
            return None
        originator_id = notification.originator_id
        version = notification.originator_version
        aggregate_id = str(originator_id)
        if public.cls in PERSONAL_FIELDS:
            if notification.topic in self.closed_topics:
                close_state(state, public.cls, holds_key.get(aggregate_id))
            else:
                open_state(state, public.cls, originator_id, version, self.keyring)
        actor = str(state.get("actor", "system"))
        # The state becomes ``data``: what remains after taking out the
        # envelope's fields (and the personal ones) keeps its order.
        for name in _ENVELOPE_FIELDS:
            state.pop(name, None)
        if not self.include_pii and public.aggregate_type == "registration":
            for name in PII_FIELDS:
                state.pop(name, None)
        if public.aggregate_type == "organizer":
            organizer_id = aggregate_id
        elif "organizer_id" in state:
            organizer_id = _organizer_cache.setdefault(aggregate_id, str(state["organizer_id"]))
        else:
            organizer_id = organizer_id_of(self.store, aggregate_id)
        return public, {
            "position": notification.id,
            "id": event_id(aggregate_id, version),
            "type": public.name,
            "aggregate_type": public.aggregate_type,
            "aggregate_id": aggregate_id,
            "aggregate_version": version,
            "organizer_id": organizer_id,
            "occurred_at": occurred_at,
            "schema_version": public.schema_version,
            "actor": actor,
            "data": state,
        }


def prepare_keys(store: LedgerStore, notifications: Sequence[Notification]) -> None:
    """Read the data keys of a batch's personal events in one query, fresh
    from the database, before the batch is decoded: a batch reader (the log
    API, the relay) then never shows data another process erased (R24)."""
    keyring = store.keyring
    if keyring is not None:
        keyring.refresh(str(n.originator_id) for n in notifications if n.topic in PERSONAL_TOPICS)


def read(store: LedgerStore, *, after: int, limit: int, types: Sequence[str] = ()) -> list[LogItem]:
    """Items with position > ``after``, in global order."""
    topics = [store_topic(TYPE_NAMES[t]) for t in types] if types else ()
    notifications = store.recorder.select_notifications(
        start=after, limit=limit, topics=topics, inclusive_of_start=False
    )
    prepare_keys(store, notifications)
    return [to_item(store, n) for n in notifications]


def read_aggregate(store: LedgerStore, aggregate_id: str, *, after: int, limit: int) -> list[LogItem]:
    """One aggregate's items with position > ``after``, in global order (that
    is also a registration's full history).  On PostgreSQL one indexed query on
    the event store's table (primary key on originator id); other recorders do
    not expose a table, so the log is scanned (fine for their small test logs)."""
    recorder = store.recorder
    if not isinstance(recorder, PostgresAggregateRecorder):
        found: list[LogItem] = []
        position = after
        while len(found) < limit:
            batch = read(store, after=position, limit=1000)
            if not batch:
                break
            found += [i for i in batch if i.aggregate_id == aggregate_id]
            position = batch[-1].position
        return found[:limit]
    query = sql.SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {table}"
        " WHERE originator_id = %s AND notification_id > %s ORDER BY notification_id LIMIT %s"
    ).format(table=sql.Identifier(recorder.datastore.schema, recorder.events_table_name))
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
        rows = cursor.execute(query, (UUID(aggregate_id), after, limit)).fetchall()
    notifications = [Notification(id=i, originator_id=o, originator_version=v, topic=t, state=bytes(state))
                     for i, o, v, t, state in rows]
    prepare_keys(store, notifications)
    return [to_item(store, n) for n in notifications]


def position_of(store: LedgerStore, aggregate_id: str, version: int) -> int | None:
    """The log position of one aggregate's event (``None`` if not stored)."""
    recorder = store.recorder
    if not isinstance(recorder, PostgresAggregateRecorder):
        return None
    query = sql.SQL(
        "SELECT notification_id FROM {table} WHERE originator_id = %s AND originator_version = %s"
    ).format(table=sql.Identifier(recorder.datastore.schema, recorder.events_table_name))
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
        row = cursor.execute(query, (UUID(aggregate_id), version)).fetchone()
    return int(row[0]) if row else None


def store_topic(cls: type[Any]) -> str:
    from eventsourcing.utils import get_topic

    return get_topic(cls)


def head(store: LedgerStore) -> int:
    """The position of the newest stored event (0 when empty)."""
    return store.recorder.max_notification_id() or 0


def notifications_of(
    store: LedgerStore, aggregate_ids: Sequence[UUID], *, up_to: int, topics: Sequence[str]
) -> list[Notification]:
    """The stored events of these aggregates with position <= ``up_to`` and one
    of ``topics``, in global order: what a view needs to say how those
    aggregates stood at ``up_to`` ("as of", docs/books.md).  One indexed query
    on PostgreSQL (primary key on originator id); other recorders are scanned."""
    recorder = store.recorder
    wanted = set(aggregate_ids)
    if not wanted:
        return []
    if not isinstance(recorder, PostgresAggregateRecorder):
        found: list[Notification] = []
        position = 0
        while position < up_to:
            batch = recorder.select_notifications(start=position, limit=1000, topics=topics,
                                                  inclusive_of_start=False, stop=up_to)
            if not batch:
                break
            found += [n for n in batch if n.originator_id in wanted]
            position = batch[-1].id
        return found
    query = sql.SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {table}"
        " WHERE originator_id = ANY(%s) AND notification_id <= %s AND topic = ANY(%s) ORDER BY notification_id"
    ).format(table=sql.Identifier(recorder.datastore.schema, recorder.events_table_name))
    with recorder.datastore.get_connection() as conn, conn.cursor(row_factory=tuple_row) as cursor:
        rows = cursor.execute(query, (list(wanted), up_to, list(topics))).fetchall()
    return [Notification(id=i, originator_id=o, originator_version=v, topic=t, state=bytes(state))
            for i, o, v, t, state in rows]
