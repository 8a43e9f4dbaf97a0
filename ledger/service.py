"""The application service: one method per command, each turning a command into
events saved atomically (cosmicpython's service layer).

Concurrency: every command reads the aggregates it needs, decides, and saves
all their new events in one transaction with optimistic concurrency.  When
another writer got there first the save fails with a conflict and the whole
command is re-run against the new state (``ledger.command_retry``) — so R9 (no
oversell) holds across threads and processes without any lock held between
requests.

Idempotency: creating commands accept the id of the aggregate to create; the
API derives it from the ``Idempotency-Key``, so a retry after a crash finds the
aggregate already there and returns it instead of creating a second one.
Every command on an existing aggregate (``_change``) run under a key
(``idempotency_store.active_key``) records its result -- the aggregate and its
version after the change -- on that key in the same transaction as its events;
a retry after a crash is answered from that version and the change is never
applied twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import RecordConflictError

from ledger import idempotency_store
from ledger.aggregate_cache import LedgerRepository
from ledger.application import LedgerRecorder, LedgerStore, ReadCheck
from ledger.clock import Clock, utc_now
from ledger.command_retry import MAX_CACHED_EVENT_IDS, CommandRetry, LruCache
from ledger.domain.organizer import Organizer
from ledger.domain.paid_event import PaidEvent
from ledger.domain.registration import Registration
from ledger.errors import (
    CapacityExhausted,
    InvalidState,
    NotFound,
    PreconditionFailed,
    ProviderNotConnected,
    VersionConflict,
)
from ledger.money import Money
from ledger.pricing import check_price, check_provider_country
from ledger.providers.registry import GATEWAY_PROVIDERS
from ledger.registration_emails import EmailClaim, RegistrationEmails, normalized_email
from ledger.sales_batch import Decision, SaleRead, SalesBatcher
from ledger.scope import ANYONE, Owned, Scope, parse_uuid

A = TypeVar("A")
OwnedT = TypeVar("OwnedT", bound=Owned)
Saved = Sequence[Aggregate]
"""The aggregates a command's change saves together; empty when it changed nothing."""

#: R20: how long a registration paid through a provider holds its seat before
#: the checkout is open -- long enough for the provider calls that open it
#: (a few bounded-timeout requests), short enough that a registration whose
#: checkout never opened holds nothing for long.
OPENING_HOLD = timedelta(minutes=2)


def _command_name(change: Callable[..., Any]) -> str:
    """The service method a ``change`` function belongs to (``reject``,
    ``request_resend`` …): names the command in its idempotency mark."""
    qualname = getattr(change, "__qualname__", type(change).__name__)
    return str(qualname).split(".<locals>")[0].rsplit(".", 1)[-1]


class LedgerService:
    def __init__(
        self, store: LedgerStore, *, clock: Clock = utc_now, seat_hold: timedelta = timedelta(minutes=15),
        manual_hold: timedelta = timedelta(hours=24), max_attempts: int = 60,
        emails: RegistrationEmails | None = None,
    ) -> None:
        """R20: ``seat_hold`` is how long an open provider checkout holds its
        seat (from the moment it opened); ``manual_hold`` how long an offline
        (manual) registration holds one while the organizer waits for the money."""
        self.store = store
        self.clock = clock
        self.seat_hold = seat_hold
        self.manual_hold = manual_hold
        #: One registration per e-mail and event (issue 13 item 10); ``None``
        #: only for a service built without the project's tables.
        self.emails = emails
        self._retry = CommandRetry(max_attempts=max_attempts)
        recorder = store.recorder
        self._sales = SalesBatcher(store, self._retry, max_attempts=max_attempts,
                                   recorded=self._recorded if isinstance(recorder, LedgerRecorder) else None)
        # registration id -> its event's id (never changes, so a bounded cache is safe)
        self._event_of: LruCache[str, str] = LruCache(MAX_CACHED_EVENT_IDS)

    # --- plumbing ---------------------------------------------------------------

    def _change(
        self, key: UUID, load: Callable[[], A], change: Callable[[A], Saved],
        expected_version: int | None = None,
    ) -> A:
        """Every command on existing aggregates, written once: load the aggregate
        the command is about, check the caller's If-Match against its version, let
        ``change`` decide (it may load more aggregates) and return what to save,
        save that in one transaction, and re-run all of it when the save conflicts.
        ``key`` is the aggregate whose in-process lock serializes the attempts.
        Under an Idempotency-Key the save also records ``<command>:<aggregate
        id> → version`` on the key (same transaction); when a crashed earlier
        run already recorded it, the aggregate at that version is returned and
        ``change`` is not run."""

        command = _command_name(change)

        def attempt() -> A:
            aggregate = load()
            found: Any = aggregate
            # A keyed retry of a request whose run crashed after this command
            # committed: answer from the version it committed, never run it again.
            recorded = idempotency_store.recorded_version(command, found.id)
            if recorded is not None:
                return cast(A, self.store.repository.get(found.id, version=recorded))
            self._check_version(aggregate, expected_version)
            to_save = change(aggregate)
            if to_save:
                # Under an Idempotency-Key the key records this result in the
                # same transaction as the events (ledger.idempotency_store).
                self.store.save(*to_save, **idempotency_store.commit_marks(command, found.id, found.version))
            return aggregate

        return self._retry.run(key, attempt)

    def _change_event(
        self, event_id: str, change: Callable[[PaidEvent], Saved], *, scope: Scope,
        expected_version: int | None,
    ) -> PaidEvent:
        key = parse_uuid(event_id, "event")
        return self._change(key, lambda: self.event(event_id, scope), change, expected_version)

    def _change_registration(
        self, registration_id: str, change: Callable[[Registration], Saved], *, scope: Scope = ANYONE,
        expected_version: int | None = None, lock_event: bool = True,
    ) -> Registration:
        """``lock_event``: the change also touches the event's seats, so attempts
        serialize on the event's lock rather than the registration's."""
        key = self._event_key(registration_id) if lock_event else parse_uuid(registration_id, "registration")
        return self._change(key, lambda: self.registration(registration_id, scope), change, expected_version)

    def _event_key(self, registration_id: str) -> UUID:
        """Registration commands also touch their event's seats: serialize on the
        event so the in-process lock matches the aggregate that conflicts."""
        event_id = self._event_of.get(registration_id)
        if event_id is None:
            event_id = self.registration(registration_id).event_id
            self._event_of.put(registration_id, event_id)
        return parse_uuid(event_id, "event")

    def _get(self, cls: type[OwnedT], aggregate_id: str | UUID, what: str, scope: Scope) -> OwnedT:
        uid = parse_uuid(aggregate_id, what)
        try:
            aggregate: object = self.store.repository.get(uid)
        except AggregateNotFoundError:
            raise NotFound(f"no {what} {aggregate_id}") from None
        if not isinstance(aggregate, cls):
            raise NotFound(f"no {what} {aggregate_id}")
        if not scope.allows(aggregate.owner_id):
            raise NotFound(f"no {what} {aggregate_id}")  # another tenant's id: 404, not 403
        return aggregate

    def _existing(self, new_id: UUID | None) -> Any | None:
        """The aggregate a retried request already created under its derived id.
        A fresh random id cannot exist yet, so only derived ids are looked up."""
        if new_id is None:
            return None
        try:
            return self.store.repository.get(new_id)
        except AggregateNotFoundError:
            return None

    def _recorded(self, event_id: UUID, keys: list[Hashable]) -> set[Hashable]:
        """The sales' dedupe keys a committed change already holds: ids of
        stored aggregates, addresses claimed on the event (every address, when
        the service has no claims table: each such sale looks itself up)."""
        recorder = self.store.recorder
        assert isinstance(recorder, LedgerRecorder)
        taken: set[Hashable] = set(recorder.recorded_ids([key for key in keys if isinstance(key, UUID)]))
        emails = [key for key in keys if isinstance(key, str)]
        taken.update(self.emails.claimed(str(event_id), emails) if self.emails is not None else emails)
        return taken

    @staticmethod
    def _check_version(aggregate: Any, expected: int | None) -> None:
        if expected is not None and aggregate.version != expected:
            raise PreconditionFailed(
                f"If-Match {expected} does not match the current version {aggregate.version}"
            )

    def _save_new(self, aggregate: Any) -> None:
        try:
            self.store.save(aggregate)
        except RecordConflictError:
            raise VersionConflict("created concurrently by an identical request") from None

    # --- queries on aggregates -------------------------------------------------------

    def organizer(self, organizer_id: str, scope: Scope = ANYONE) -> Organizer:
        return self._get(Organizer, organizer_id, "organizer", scope)

    def event(self, event_id: str, scope: Scope = ANYONE) -> PaidEvent:
        return self._get(PaidEvent, event_id, "event", scope)

    def registration(self, registration_id: str, scope: Scope = ANYONE) -> Registration:
        return self._get(Registration, registration_id, "registration", scope)

    def capacity_of(self, event: PaidEvent) -> int:
        """The organizer's plan size, read from the cached organizer without
        copying it (only this one number is read, nothing is kept).  The read
        still fast-forwards the cached organizer (one indexed query), so a
        plan change -- from any process -- limits the very next sale."""
        uid = parse_uuid(event.organizer_id, "organizer")
        try:
            organizer: object = self.store.repository.get(uid, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            raise NotFound(f"no organizer {event.organizer_id}") from None
        if not isinstance(organizer, Organizer):
            raise NotFound(f"no organizer {event.organizer_id}")
        return organizer.plan_size

    def _event_and_capacity(self, event_id: str, *, copy: bool = True, key: UUID | None = None,
                            ) -> tuple[PaidEvent, int]:
        """The event (a copy) and its organizer's plan size, as
        :meth:`event` and :meth:`capacity_of` read them, both fast-forwarded
        by one query when both are cached (``LedgerRepository.get_with``).
        ``copy=False``: the cached event itself, for a caller that only
        drafts on it (``ledger.sales_batch``).  ``key``: ``event_id`` already
        parsed (a sale's, on every attempt)."""
        repository = self.store.repository
        if not isinstance(repository, LedgerRepository):
            paid_event = self.event(event_id)
            return paid_event, self.capacity_of(paid_event)
        uid = key or parse_uuid(event_id, "event")

        def organizer_of(aggregate: object) -> UUID:
            if not isinstance(aggregate, PaidEvent):
                raise NotFound(f"no event {event_id}")
            return parse_uuid(aggregate.organizer_id, "organizer")

        try:
            paid_event, organizer = repository.get_with(uid, organizer_of, copy=copy)
        except AggregateNotFoundError:
            raise NotFound(f"no event {event_id}") from None
        if not isinstance(paid_event, PaidEvent) or not isinstance(organizer, Organizer):
            raise NotFound(f"no event {event_id}")
        return paid_event, organizer.plan_size

    def _sale_read(self, event_id: str, key: UUID, *, fresh: bool) -> SaleRead:
        """The cached event itself and its capacity for a batch of sales
        (``ledger.sales_batch``), as :meth:`_event_and_capacity` reads them
        -- or, not ``fresh`` and both known current (trusted reads,
        ``ledger.aggregate_cache``), straight from the cache, the save then
        checking the organizer's version (``ReadCheck``: a plan change from
        any process still limits the next sale, R9)."""
        repository = self.store.repository
        if fresh or not isinstance(repository, LedgerRepository):
            return SaleRead(*self._event_and_capacity(event_id, copy=False, key=key))

        def organizer_of(aggregate: object) -> UUID:
            if not isinstance(aggregate, PaidEvent):
                raise NotFound(f"no event {event_id}")
            return parse_uuid(aggregate.organizer_id, "organizer")

        try:
            paid_event, organizer, trusted = repository.read_for_sale(key, organizer_of, fresh=False)
        except AggregateNotFoundError:
            raise NotFound(f"no event {event_id}") from None
        if not isinstance(paid_event, PaidEvent) or not isinstance(organizer, Organizer):
            raise NotFound(f"no event {event_id}")
        checks = (ReadCheck(organizer.id, organizer.version),) if trusted else ()
        return SaleRead(paid_event, organizer.plan_size, trusted, checks)

    def seat_hold_for(self, event: PaidEvent) -> timedelta:
        """How long a registration for ``event`` holds a seat (R20): the open
        checkout's hold, or the offline payment's."""
        return self.seat_hold if event.provider in GATEWAY_PROVIDERS else self.manual_hold

    # --- organizers --------------------------------------------------------------------

    def register_organizer(
        self, *, name: str, country: str, plan_size: int, new_id: UUID | None = None,
        email: str | None = None,
    ) -> Organizer:
        """``email``: the organizer's contact address, recorded as an
        ``OrganizerContactChanged`` saved with the registration."""
        uid = new_id or uuid.uuid4()
        existing = self._existing(new_id)
        if isinstance(existing, Organizer):
            return existing
        organizer = Organizer.register(id=uid, name=name, country=country, plan_size=plan_size)
        organizer.change_contact(email)
        self._save_new(organizer)
        return organizer

    def change_contact(
        self, organizer_id: str, email: str | None, *, scope: Scope = ANYONE,
        expected_version: int | None = None,
    ) -> Organizer:
        """Set, change or remove the organizer's contact e-mail (issue 18:
        disputes, reversals and failed refunds are e-mailed there)."""
        def change(organizer: Organizer) -> Saved:
            return (organizer,) if organizer.change_contact(email) else ()

        return self._change(
            parse_uuid(organizer_id, "organizer"), lambda: self.organizer(organizer_id, scope), change,
            expected_version,
        )

    def change_plan(
        self, organizer_id: str, plan_size: int, *, expected_version: int | None = None
    ) -> Organizer:
        def change(organizer: Organizer) -> Saved:
            organizer.change_plan(plan_size)
            return (organizer,)

        return self._change(
            parse_uuid(organizer_id, "organizer"), lambda: self.organizer(organizer_id), change, expected_version
        )

    def connect_provider(
        self, organizer_id: str, *, provider: str, masked: Mapping[str, str],
        store_secrets: Callable[[str], None], scope: Scope = ANYONE,
        connection_id: str | None = None,
    ) -> tuple[Organizer, str]:
        """Record a provider connection.  ``store_secrets`` persists the encrypted
        credentials under the new connection id before the event is saved, so a
        connection event never exists without its credentials."""
        cid = connection_id or str(uuid.uuid4())

        def change(organizer: Organizer) -> Saved:
            if cid in organizer.connections:
                return ()
            check_provider_country(provider, organizer.country)
            store_secrets(cid)
            organizer.connect_provider(cid, provider, dict(masked))
            return (organizer,)

        organizer = self._change(
            parse_uuid(organizer_id, "organizer"), lambda: self.organizer(organizer_id, scope), change
        )
        return organizer, cid

    # --- events ------------------------------------------------------------------------

    def check_new_event(
        self, organizer: Organizer, *, sessions: list[datetime], price: Money, provider: str
    ) -> None:
        """The rules an event must meet before anything is recorded for it:
        R3's country, R5/R6's price, sessions in the future.  Also run before
        connecting a provider inline (``ProviderConnector.create_event``), so a
        refused event leaves no connection behind."""
        check_provider_country(provider, organizer.country)
        check_price(price, provider)
        now = self.clock()
        for starts_at in sessions:
            PaidEvent.check_future(starts_at, now, field="sessions" if len(sessions) > 1 else "starts_at")

    def create_event(
        self, *, organizer_id: str, title: str, description: str, sessions: list[datetime],
        timezone: str, permanent: bool, price: Money, provider: str, scope: Scope = ANYONE,
        new_id: UUID | None = None, connection_id: str | None = None,
    ) -> PaidEvent:
        """``connection_id``: the connection to be paid through (one just made
        for this event); by default the organizer's newest one of ``provider``."""
        organizer = self.organizer(organizer_id, scope)
        uid = new_id or uuid.uuid4()
        existing = self._existing(new_id)
        if isinstance(existing, PaidEvent):
            return existing
        self.check_new_event(organizer, sessions=sessions, price=price, provider=provider)
        if connection_id is not None and organizer.connections.get(connection_id, {}).get("provider") != provider:
            raise ProviderNotConnected(f"connection {connection_id} is not a {provider} connection", field="provider")
        connection_id = connection_id or organizer.connection_for(provider)
        if connection_id is None:
            raise ProviderNotConnected(
                f"connect {provider} before creating an event paid through it", field="provider"
            )
        paid_event = PaidEvent.create(
            id=uid, organizer_id=organizer_id, title=title, description=description,
            timezone=timezone, permanent=permanent,
            sessions=[
                {"id": f"s{i + 1}", "starts_at": s.astimezone(UTC).isoformat()}
                for i, s in enumerate(sorted(sessions))
            ],
            price_minor=price.minor, currency=price.currency, provider=provider,
            connection_id=connection_id,
        )
        self._save_new(paid_event)
        return paid_event

    def edit_event(
        self, event_id: str, changes: Mapping[str, Any], *, scope: Scope, expected_version: int | None = None,
    ) -> PaidEvent:
        """Title and description; any price field is refused (R7).  Checked
        after the event is found (another tenant's id stays a 404) and before
        the If-Match version."""
        self.event(event_id, scope)
        PaidEvent.check_edit(changes)

        def change(paid_event: PaidEvent) -> Saved:
            paid_event.edit(changes.get("title"), changes.get("description"))
            return (paid_event,)

        return self._change_event(event_id, change, scope=scope, expected_version=expected_version)

    def reschedule(
        self, event_id: str, *, starts_at: datetime, session_id: str | None, scope: Scope,
        expected_version: int | None = None,
    ) -> PaidEvent:
        def change(paid_event: PaidEvent) -> Saved:
            paid_event.reschedule(starts_at.astimezone(UTC), session_id, now=self.clock())
            return (paid_event,)

        return self._change_event(event_id, change, scope=scope, expected_version=expected_version)

    def cancel_event(
        self, event_id: str, *, reason: str, scope: Scope, expected_version: int | None = None
    ) -> PaidEvent:
        """R15: the event and every open registration close in one transaction;
        paid ones become ``refund_due``."""

        def change(paid_event: PaidEvent) -> Saved:
            paid_event.cancel(reason)
            registrations = [self.registration(rid) for rid in paid_event.registrations]
            for registration in registrations:
                registration.cancel(reason)
            return (paid_event, *registrations)

        return self._change_event(event_id, change, scope=scope, expected_version=expected_version)

    # --- registrations ----------------------------------------------------------------

    def register_participant(
        self, event_id: str, *, name: str, email: str, fields: Mapping[str, str],
        language: str | None = None, new_id: UUID | None = None, fresh_id: UUID | None = None,
    ) -> Registration:
        """Hold a seat (R9) and record the registration, atomically.  Not a
        ``_change``: it creates the registration instead of loading one.

        ``new_id``: an id derived from the request (its Idempotency-Key): a
        registration already recorded under it is returned.  ``fresh_id``
        (without ``new_id``): an id the caller just drew at random, so it can
        tell its own new registration from an earlier one answered for the
        same address; nothing can exist under it, so it is never looked up.

        R20: a registration paid through a provider holds its seat only for
        ``OPENING_HOLD``, while its checkout is being opened
        (:meth:`start_checkout` then holds it for the checkout); an offline
        one holds it for ``manual_hold``.

        The same e-mail again (trimmed, any case) on the same event returns
        the registration that first used it (``ledger.registration_emails``):
        the caller tells by its id, which is not ``new_id``.  Race-free: the
        address is claimed in the registration's transaction.

        Concurrent registrations for one event are group-committed
        (``ledger.sales_batch``): one read of the event, every queued sale
        decided in memory, one transaction for all of them -- a rush does not
        serialize one commit at a time.  Two sales with the same id or the
        same address never share a batch."""
        uid = new_id or fresh_id or uuid.uuid4()
        event_key = parse_uuid(event_id, "event")
        existing = self._existing(new_id)
        if isinstance(existing, Registration):
            return existing
        rid, eid = str(uid), str(event_key)  # the event loaded by ``event_key`` has this id

        def sale(paid_event: PaidEvent, capacity: int, recheck: bool) -> Decision[Registration]:
            """One sale in a batch of sales on the event (``ledger.sales_batch``):
            the seat is held last, so a refused sale leaves the event untouched."""
            # A re-run (after a conflict, or a save whose reply was lost) looks
            # its own id up, fresh or derived: it may have committed already.
            if recheck and isinstance(again := self._existing(uid), Registration):
                return Decision(again)
            marks: tuple[EmailClaim, ...] = ()
            if self.emails is not None:
                # The address is claimed in the events' transaction (its
                # primary key makes a second claim fail the save, and the sale
                # is re-run).  So the look-up is needed only on a re-run: a
                # first try claims optimistically, saving a transaction per
                # registration; a repeated address costs one failed try.
                earlier_id = self.emails.registration_for(eid, email) if recheck else None
                if earlier_id is not None:
                    earlier = self.registration(earlier_id)
                    if earlier.answers_for_its_email:
                        return Decision(earlier)
                marks = (self.emails.claim(eid, email, rid, replaces=earlier_id),)
            now = self.clock()
            hold = OPENING_HOLD if paid_event.provider in GATEWAY_PROVIDERS else self.manual_hold
            registration = Registration.register(
                id=uid, event_id=eid, organizer_id=paid_event.organizer_id,
                name=name, email=email, fields=dict(fields), language=language,
                price_minor=paid_event.price_minor, currency=paid_event.currency,
                provider=paid_event.provider,
            )
            paid_event.hold_seat(rid, capacity=capacity, now=now, until=now + hold)
            return Decision(registration, save=(registration,), save_kwargs={"idempotency_marks": marks})

        return cast(Registration, self._sales.sell(
            event_key, lambda fresh: self._sale_read(event_id, event_key, fresh=fresh), sale,
            dedupe=(uid, normalized_email(email)),
        ))

    def start_checkout(
        self, registration_id: str, *, provider: str, url: str, reference: str, until: datetime | None = None,
    ) -> Registration:
        """Record the checkout opened at the provider and hold the seat until
        the checkout expires at the provider (``until``; without one,
        ``seat_hold`` from now), in one transaction (R20).  Only the first
        record of a checkout holds: asking again for the same checkout never
        extends its hold.  ``CapacityExhausted`` when the opening hold lapsed
        and its seat went to someone else meanwhile."""

        def change(registration: Registration) -> Saved:
            if registration.checkout and registration.checkout["reference"] == reference:
                return ()
            paid_event = self.event(registration.event_id)
            now = self.clock()
            paid_event.hold_seat(
                str(registration.id), capacity=self.capacity_of(paid_event), now=now,
                until=until or now + self.seat_hold,
            )
            registration.start_checkout(provider, url, reference)
            return (registration, paid_event)

        return self._change_registration(registration_id, change)

    def hold_for_checkout(self, registration_id: str) -> Registration:
        """Hold a seat for ``OPENING_HOLD`` before a provider checkout is
        opened again (after an outage) for a registration that holds none."""

        def change(registration: Registration) -> Saved:
            paid_event = self.event(registration.event_id)
            now = self.clock()
            if paid_event.holds_seat(str(registration.id), now):
                return ()
            paid_event.hold_seat(
                str(registration.id), capacity=self.capacity_of(paid_event), now=now, until=now + OPENING_HOLD
            )
            return (paid_event,)

        return self._change_registration(registration_id, change)

    def release_hold(self, registration_id: str, reason: str) -> Registration:
        """Give back a held (never a sold) seat: the checkout did not open (R20)."""

        def change(registration: Registration) -> Saved:
            paid_event = self.event(registration.event_id)
            rid = str(registration.id)
            if rid in paid_event.sold or rid not in paid_event.holds:
                return ()
            paid_event.release_seat(rid, reason)
            return (paid_event,)

        return self._change_registration(registration_id, change)

    def record_payment(
        self, registration_id: str, *, amount: Money, provider: str, reference: str, method: str | None = None,
        scope: Scope = ANYONE, expected_version: int | None = None,
    ) -> Registration:
        """Money received is a fact (R9, R17): it is recorded whatever is due --
        also when no seat is left, the event is cancelled or the price is already
        paid -- and what pays for no ticket is owed back (``refund_due``)."""

        def change(registration: Registration) -> Saved:
            if registration.has_payment(provider, reference, amount):  # a repeat; another amount: 409
                return ()
            paid_event = self.event(registration.event_id)
            granted = False
            if registration.is_open and paid_event.status == "scheduled":
                granted = paid_event.sell_seat(
                    str(registration.id), capacity=self.capacity_of(paid_event), now=self.clock()
                )
            registration.record_payment(amount, provider, reference, seat_granted=granted, method=method)
            rid = str(registration.id)
            if not registration.is_open and rid in paid_event.holds and rid not in paid_event.sold:
                paid_event.release_seat(rid, "capacity_exhausted")  # no seat found: the hold ends with it
            return (registration, paid_event)

        return self._change_registration(registration_id, change, scope=scope, expected_version=expected_version)

    def record_payment_mismatch(
        self, registration_id: str, *, amount: Money, provider: str, reference: str
    ) -> Registration:
        """A provider says money arrived that is not the price: kept for the
        organizer to resolve, never counted as a normal payment."""

        def change(registration: Registration) -> Saved:
            if registration.record_payment_mismatch(amount, provider, reference):
                return (registration,)
            return ()

        return self._change_registration(registration_id, change)

    def record_payment_failure(self, registration_id: str, *, reason: str, reference: str) -> Registration:
        """A failed or expired checkout gives its held seat back."""

        def change(registration: Registration) -> Saved:
            paid_event = self.event(registration.event_id)
            if registration.record_payment_failure(reason, reference) and (
                str(registration.id) not in paid_event.sold
            ):
                paid_event.release_seat(str(registration.id), reason)
            return (registration, paid_event)

        return self._change_registration(registration_id, change)

    def confirm(self, registration_id: str, *, scope: Scope, expected_version: int | None = None) -> Registration:
        """R14: confirming an unpaid participant gives them a seat, if one is left."""

        def change(registration: Registration) -> Saved:
            paid_event = self.event(registration.event_id)
            if paid_event.status == "cancelled":
                raise InvalidState("the event is cancelled")
            if not registration.confirmed and registration.is_open and not paid_event.sell_seat(
                str(registration.id), capacity=self.capacity_of(paid_event), now=self.clock()
            ):
                raise CapacityExhausted("no seat is left to confirm this participant")
            registration.confirm()
            return (registration, paid_event)

        return self._change_registration(registration_id, change, scope=scope, expected_version=expected_version)

    def reject(
        self, registration_id: str, *, reason: str, scope: Scope, expected_version: int | None = None
    ) -> Registration:
        """R15: the seat goes back; money received becomes ``refund_due``."""

        def change(registration: Registration) -> Saved:
            paid_event = self.event(registration.event_id)
            registration.reject(reason)
            paid_event.release_seat(str(registration.id), "rejected")
            return (registration, paid_event)

        return self._change_registration(registration_id, change, scope=scope, expected_version=expected_version)

    def request_resend(
        self, registration_id: str, *, scope: Scope, expected_version: int | None = None
    ) -> Registration:
        def change(registration: Registration) -> Saved:
            registration.request_resend()
            return (registration,)

        return self._change_registration(registration_id, change, scope=scope, expected_version=expected_version)

    def record_email_delivery_failure(
        self, registration_id: str, *, message_id: str, kind: str, smtp_code: int | None, reason: str | None
    ) -> Registration:
        """The notify worker's report that an e-mail cannot be delivered: recorded
        on the registration, so the organizer sees it in GET /v1/registrations/{id}.
        Idempotent per ``message_id``."""

        def change(registration: Registration) -> Saved:
            if registration.record_email_failure(
                message_id=message_id, kind=kind, smtp_code=smtp_code, reason=reason
            ):
                return (registration,)
            return ()

        return self._change_registration(registration_id, change, lock_event=False)

    def erase_personal_data(self, registration_id: str, *, erasure_id: str, scope: Scope = ANYONE) -> Registration:
        """R24: record that the participant's personal data was erased (the key
        is destroyed by ``ledger.erasure`` first).  Idempotent: an erased
        registration records nothing again."""

        def change(registration: Registration) -> Saved:
            return (registration,) if registration.erase(erasure_id) else ()

        return self._change_registration(registration_id, change, scope=scope, lock_event=False)

    def record_refund(
        self, registration_id: str, *, amount: Money, reference: str, ends_access: bool | None = None,
        scope: Scope = ANYONE, expected_version: int | None = None,
    ) -> Registration:
        """A refund made at the provider (R15).  Only a refund that ends access
        (R19: by default one that leaves nothing paid) gives the seat back."""

        def change(registration: Registration) -> Saved:
            if registration.has_refund(reference, amount):  # a repeat; another amount: 409
                return ()
            paid_event = self.event(registration.event_id)
            was_open = registration.is_open
            registration.record_refund(amount, reference, ends_access=ends_access)
            if was_open and not registration.is_open:
                paid_event.release_seat(str(registration.id), "refunded")
            return (registration, paid_event)

        return self._change_registration(registration_id, change, scope=scope, expected_version=expected_version)

    # --- provider-side corrections (issue 18) -------------------------------------

    def record_dispute(
        self, registration_id: str, *, dispute_id: str, provider: str, reference: str, amount: Money,
        reason: str | None,
    ) -> Registration:
        """The payer disputed a payment: a marker, no money moves yet."""

        def change(registration: Registration) -> Saved:
            return (registration,) if registration.record_dispute(dispute_id, provider, reference, amount,
                                                                  reason) else ()

        return self._change_registration(registration_id, change)

    def record_funds_withdrawn(self, registration_id: str, *, dispute_id: str, amount: Money) -> Registration:
        """The provider took the disputed money back (not revenue, R18)."""

        def change(registration: Registration) -> Saved:
            return (registration,) if registration.record_funds_withdrawn(dispute_id, amount) else ()

        return self._change_registration(registration_id, change)

    def record_funds_reinstated(self, registration_id: str, *, dispute_id: str, amount: Money) -> Registration:
        """The provider gave withdrawn money back."""

        def change(registration: Registration) -> Saved:
            return (registration,) if registration.record_funds_reinstated(dispute_id, amount) else ()

        return self._change_registration(registration_id, change)

    def resolve_dispute(self, registration_id: str, *, dispute_id: str, outcome: str) -> Registration:
        """Won: nothing changes but the marker.  Lost: the ticket, its seat and
        its access end, like a refund that ends access."""

        def change(registration: Registration) -> Saved:
            was_open = registration.is_open
            if not registration.resolve_dispute(dispute_id, outcome):
                return ()
            if was_open and not registration.is_open:
                paid_event = self.event(registration.event_id)
                paid_event.release_seat(str(registration.id), "dispute_lost")
                return (registration, paid_event)
            return (registration,)

        return self._change_registration(registration_id, change)

    def record_reversal(
        self, registration_id: str, *, reversal_id: str, reference: str, amount: Money
    ) -> Registration:
        """The provider reversed a payment: money, ticket, seat and access end."""

        def change(registration: Registration) -> Saved:
            was_open = registration.is_open
            if not registration.record_reversal(reversal_id, reference, amount):
                return ()
            if was_open and not registration.is_open:
                paid_event = self.event(registration.event_id)
                paid_event.release_seat(str(registration.id), "reversed")
                return (registration, paid_event)
            return (registration,)

        return self._change_registration(registration_id, change)

    def record_payment_authorization(
        self, registration_id: str, *, amount: Money, provider: str, reference: str
    ) -> Registration:
        """The provider holds the payer's money until the shop confirms it
        (PayU WAITING_FOR_CONFIRMATION): recorded, nothing booked yet."""

        def change(registration: Registration) -> Saved:
            return (registration,) if registration.record_authorization(amount, provider, reference) else ()

        return self._change_registration(registration_id, change)

    def record_refund_failure(self, registration_id: str, *, reference: str) -> Registration:
        """A recorded refund failed at the provider: its money is owed back again."""

        def change(registration: Registration) -> Saved:
            return (registration,) if registration.record_refund_failure(reference) else ()

        return self._change_registration(registration_id, change)
