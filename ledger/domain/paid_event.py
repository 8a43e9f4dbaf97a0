"""A paid event: one immutable price (R5, R7), a schedule (R10, R13) and its
seats (R9).

Seats live here, on the event, because capacity is a property of the event as a
whole: every seat change is an event on *this* aggregate, so two concurrent
sales of the last seat conflict on the aggregate's version and one of them is
retried against the new state (optimistic concurrency).  That is what makes
overselling impossible, across threads and processes alike.

Holds are for real buyers only (R20): a seat is held for a short opening
window while the provider checkout is being opened, then for the checkout's
hold once it is open, and is released when the checkout expires or fails;
an offline (manual) registration holds one for a set time.  Every hold has an
expiry, so a lapsed hold frees its seat without any event being written.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.errors import (
    CapacityExhausted,
    EventCancelled,
    InvalidState,
    NotFound,
    PriceImmutable,
    StartsAtInPast,
    ValidationFailed,
)
from ledger.money import Money


class PaidEvent(Aggregate):
    #: Containers of immutable values only (ids, ISO times, True): copying
    #: the cached event copies these with one ``dict.copy()`` each, and a
    #: sale's draft reads them through a copy-on-write layer
    #: (``ledger.aggregate_cache``) -- they grow with every seat.
    FLAT_STATE = ("holds", "sold", "registrations", "_first_held")

    class Created(Aggregate.Created):
        organizer_id: str
        title: str
        description: str
        timezone: str
        permanent: bool
        sessions: list[dict[str, str]]
        price_minor: int
        currency: str
        provider: str
        connection_id: str | None

    @event(Created)
    def __init__(
        self, organizer_id: str, title: str, description: str, timezone: str, permanent: bool,
        sessions: list[dict[str, str]], price_minor: int, currency: str, provider: str,
        connection_id: str | None,
    ) -> None:
        self.organizer_id = organizer_id
        self.title = title
        self.description = description
        self.timezone = timezone
        self.permanent = permanent
        self.sessions = [dict(s) for s in sessions]
        self.price_minor = price_minor
        self.currency = currency
        self.provider = provider
        self.connection_id = connection_id
        self.status = "scheduled"
        self.cancel_reason: str | None = None
        self.holds: dict[str, str] = {}  # registration id -> hold expiry (ISO UTC)
        self.sold: dict[str, bool] = {}  # registration ids holding a sold seat
        self.registrations: list[str] = []

    @classmethod
    def create(cls, *, id: UUID, **kwargs: Any) -> PaidEvent:
        return cls._create(cls.Created, id=id, **kwargs)

    @property
    def owner_id(self) -> str:
        """The organizer a scope must allow to see this event."""
        return self.organizer_id

    @property
    def price(self) -> Money:
        return Money(self.price_minor, self.currency)

    @property
    def starts_at(self) -> str:
        return min(s["starts_at"] for s in self.sessions)

    # --- details and schedule -------------------------------------------------

    @staticmethod
    def check_future(starts_at: datetime, now: datetime, *, field: str = "starts_at") -> None:
        """Every session given -- at creation or by a reschedule -- must start
        after ``now`` (the ledger's clock): a past date would be mailed to every
        participant (R13) and nobody could join it.  This holds for a permanent
        series too: it is paid once for sessions still to come (R10), so each
        session named at creation is in the future.  A session of a series that
        has already taken place stays as it was; it can be moved, but only to a
        future time."""
        if starts_at <= now:
            raise StartsAtInPast(
                f"{starts_at.isoformat()} is not in the future (now is {now.replace(microsecond=0).isoformat()})",
                field=field,
            )

    class DetailsEdited(Aggregate.Event):
        title: str
        description: str

    #: What an organizer may edit; anything about the price never (R7).
    EDITABLE = frozenset({"title", "description"})
    PRICE_FIELDS = frozenset({"price", "amount", "currency"})

    @classmethod
    def check_edit(cls, changes: Collection[str]) -> None:
        """R7: an edit naming any price field is refused as such (not as an
        unknown field), so the organizer learns why and what to do instead."""
        if cls.PRICE_FIELDS & set(changes):
            raise PriceImmutable(
                "the price can never change; cancel the event and create a new one",
                field="price",
            )
        unknown = sorted(set(changes) - cls.EDITABLE)
        if unknown:
            raise ValidationFailed({k: ["unknown field"] for k in unknown})

    def edit(self, title: str | None, description: str | None) -> None:
        """Title and description only: the price can never change (R7)."""
        self._require_scheduled()
        new_title = self.title if title is None else title
        new_description = self.description if description is None else description
        if (new_title, new_description) != (self.title, self.description):
            self._edited(title=new_title, description=new_description)

    @event(DetailsEdited)
    def _edited(self, title: str, description: str) -> None:
        self.title = title
        self.description = description

    class Rescheduled(Aggregate.Event):
        session_id: str
        starts_at: str
        previous_starts_at: str

    def reschedule(self, starts_at: datetime, session_id: str | None, *, now: datetime) -> None:
        """R13: move one session (or the only one), never into the past;
        participants are notified by the notify worker reacting to this event."""
        self._require_scheduled()
        self.check_future(starts_at, now)
        if session_id is None:
            if len(self.sessions) != 1:
                raise InvalidState(
                    "this event has several sessions: name the session_id to move",
                    field="session_id",
                )
            session_id = self.sessions[0]["id"]
        session = next((s for s in self.sessions if s["id"] == session_id), None)
        if session is None:
            raise NotFound(f"no session {session_id!r} in this event", field="session_id")
        new = starts_at.isoformat()
        if new != session["starts_at"]:
            self._rescheduled(
                session_id=session_id, starts_at=new, previous_starts_at=session["starts_at"]
            )

    @event(Rescheduled)
    def _rescheduled(self, session_id: str, starts_at: str, previous_starts_at: str) -> None:
        for s in self.sessions:
            if s["id"] == session_id:
                s["starts_at"] = starts_at

    class Cancelled(Aggregate.Event):
        reason: str

    def cancel(self, reason: str) -> None:
        """R15: registrations are closed by the service in the same transaction."""
        self._require_scheduled()
        self._cancelled(reason=reason)

    @event(Cancelled)
    def _cancelled(self, reason: str) -> None:
        self.status = "cancelled"
        self.cancel_reason = reason

    def _require_scheduled(self) -> None:
        if self.status == "cancelled":
            raise EventCancelled("the event is cancelled")

    # --- seats (R9, R20) ---------------------------------------------------------

    def seats_held(self, now: datetime) -> int:
        """Unexpired holds of registrations that have not bought their seat."""
        stamp = now.isoformat()
        return sum(1 for rid, until in self.holds.items() if rid not in self.sold and until > stamp)

    def seats_taken(self, now: datetime) -> int:
        """Sold seats plus unexpired holds."""
        return len(self.sold) + self.seats_held(now)

    def seats_left(self, capacity: int, now: datetime) -> int:
        return max(0, capacity - self.seats_taken(now))

    @property
    def first_held(self) -> dict[str, str]:
        """Registration id -> expiry of its first hold (ISO UTC): when it
        registered, by the ledger's clock, plus the opening window.  Kept
        beside the state rather than in ``__init__`` so snapshots taken before
        it existed still load (they simply know none)."""
        found: dict[str, str] = vars(self).setdefault("_first_held", {})
        return found

    def _has_free_seat(self, capacity: int, now: datetime) -> bool:
        """``seats_left(...) >= 1``, without counting the unexpired holds one by
        one while sold seats plus every hold ever recorded (an upper bound of
        the seats taken) stay under the capacity: a sale in a 10,000-seat rush
        then costs the same as the first."""
        return len(self.sold) + len(self.holds) < capacity or self.seats_left(capacity, now) >= 1

    def holds_seat(self, registration_id: str, now: datetime) -> bool:
        until = self.holds.get(registration_id)
        return until is not None and until > now.isoformat()

    class SeatHeld(Aggregate.Event):
        registration_id: str
        expires_at: str

    def hold_seat(self, registration_id: str, *, capacity: int, now: datetime, until: datetime) -> None:
        """Reserve a seat until ``until`` (R9, R20); refused when none is left.

        A registration whose hold has not lapsed keeps its seat and only gets
        the new expiry (the opening hold becoming the checkout's hold): it
        never needs a second seat.  A sold seat needs no hold.
        """
        self._require_scheduled()
        if registration_id in self.sold:
            return
        if not self.holds_seat(registration_id, now) and not self._has_free_seat(capacity, now):
            raise CapacityExhausted(f"all {capacity} tickets are taken")
        expires_at = until.isoformat()
        if self.holds.get(registration_id) != expires_at:
            # What ``self._seat_held(...)`` triggers -- the same event, applied
            # by ``_seat_held`` -- without the decorator's argument handling
            # (every registration holds a seat: its hottest event).
            self.trigger_event(self.SeatHeld, registration_id=registration_id, expires_at=expires_at)

    @event(SeatHeld)
    def _seat_held(self, registration_id: str, expires_at: str) -> None:
        """Hold, first hold (a state, not a field: no event changes), and the
        registration listed once.  Whether it is listed is asked of
        ``first_held`` (a dict) instead of scanned in ``registrations`` (a
        list of every registration: 140 µs per hold at 10,000, twice per
        sale -- the draft's and the cache's): every id in ``first_held`` is
        listed, and while both have as many entries, nothing else is.  Only
        an event restored from a snapshot older than ``first_held`` lists
        ids it lacks; there the list is still scanned."""
        self.holds[registration_id] = expires_at
        first = self.first_held
        if registration_id in first:
            return
        listed = len(first) != len(self.registrations) and registration_id in self.registrations
        first[registration_id] = expires_at
        if not listed:
            self.registrations.append(registration_id)

    class SeatSold(Aggregate.Event):
        registration_id: str

    def sell_seat(self, registration_id: str, *, capacity: int, now: datetime) -> bool:
        """Turn the registration's hold into a sold seat.  If its hold lapsed, a
        free seat is taken instead; if none is left, return False (the caller
        records the money anyway and owes it back, R9, R17).

        ``capacity`` is the plan as it is *now*: a hold never sells beyond it.
        After a downgrade (5 seats held, plan changed to 3) the first three
        payments get seats and the other two are owed back -- a plan change
        limits every later sale at once (R20), holds taken before it included."""
        if registration_id in self.sold:
            return True
        if len(self.sold) >= capacity:
            return False
        if not self.holds_seat(registration_id, now) and not self._has_free_seat(capacity, now):
            return False
        self._seat_sold(registration_id=registration_id)
        return True

    @event(SeatSold)
    def _seat_sold(self, registration_id: str) -> None:
        self.sold[registration_id] = True

    class SeatReleased(Aggregate.Event):
        registration_id: str
        reason: str

    def release_seat(self, registration_id: str, reason: str) -> None:
        """Give a seat back (payment failed, checkout expired, rejected, refunded)."""
        if registration_id in self.sold or registration_id in self.holds:
            self._seat_released(registration_id=registration_id, reason=reason)

    @event(SeatReleased)
    def _seat_released(self, registration_id: str, reason: str) -> None:
        self.sold.pop(registration_id, None)
        self.holds.pop(registration_id, None)

    def seat_of(self, registration_id: str, now: datetime) -> tuple[str, str | None]:
        """One registration's seat as shown to people (R20): ``("sold", None)``,
        ``("held", <expiry>)`` while an unexpired hold keeps it, else
        ``("none", None)`` -- a lapsed hold holds nothing."""
        if registration_id in self.sold:
            return "sold", None
        if self.status == "scheduled" and self.holds_seat(registration_id, now):
            return "held", self.holds[registration_id]
        return "none", None

    def summary(self, capacity: int, now: datetime) -> dict[str, Any]:
        """Seats as shown to people: sold and held apart (R20), so a sell-out
        by unpaid holds is visible as such."""
        scheduled = self.status == "scheduled"
        return {
            "tickets_sold": len(self.sold),
            "tickets_held": self.seats_held(now) if scheduled else 0,
            "tickets_left": self.seats_left(capacity, now) if scheduled else 0,
            "capacity": capacity,
        }
