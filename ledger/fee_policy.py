"""R16, R18: the platform's 5% service fee, fixed on the facts when they are recorded.

Why fixed on the facts: a report then only *adds* fee figures that were fixed at
the time (``PaymentRecorded.fee_minor``, ``RefundRecorded.fee_reversed_minor``,
``ParticipantRejected`` / ``RegistrationCancelled.fee_reversed_minor``), so every
report total equals the sum of its rows and of the facts, to the cent, whatever
the grouping.  Rounding any sum again would break that.  Each fact names the
policy that computed its figures (``fee_policy``); a policy change never rewrites
a stored figure (docs/money.md).

Policies:

``fee-v1`` (the first release, stored lines only): 5% half-up of *every*
payment, reversed in proportion by refunds.  It charged a fee on money that
bought no ticket (a payment after the cancel, a second payment, a payment that
found no seat).  Nothing computes it any more; its stored lines stay as they were.

``fee-v2`` (R18, current): the fee is charged on ticket money only -- the money
that pays for a ticket the registration holds (``ledger.owed_back``).  After
every fact, what stays charged on a registration is 5% of its ticket money,
rounded half-up to the minor unit; each fact records the difference:

* the payment that makes a ticket paid charges ``fee(ticket money)``; money
  that pays for no ticket (owed back, R17) charges nothing;
* a refund taken from the ticket (a partial, goodwill refund that keeps access,
  R19) reverses down to ``fee(ticket money left)`` -- the fee in proportion;
* a ticket lost after payment (reject, event cancelled, a refund that ends
  access) reverses everything still charged.

Example: 10.10 PLN ticket -> 50.5 grosze -> 0.51 charged; a goodwill refund
of 5.05 leaves 5.05 of ticket money -> 25.25 -> 0.25 stays, 0.26 is reversed;
refunding the rest reverses the last 0.25.
"""

from __future__ import annotations

from dataclasses import dataclass

FEE_V1 = "fee-v1"
FEE_V2 = "fee-v2"
FEE_RATE_NUMERATOR = 5
FEE_RATE_DENOMINATOR = 100

#: What each policy means, as the fee report states it.
POLICY_TEXT: dict[str, str] = {
    FEE_V1: "fee-v1 (stored lines only): 5% half-up of every payment, reversed in proportion by refunds",
    FEE_V2: "fee-v2 (R18): 5% half-up of the money that pays for a delivered ticket; money owed back "
            "carries no fee; a partial refund of a ticket reverses in proportion, a lost ticket reverses all",
}


def _div_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounding halves away from zero (amounts are >= 0)."""
    assert numerator >= 0 and denominator > 0
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True)
class FeePolicy:
    version: str = FEE_V2
    numerator: int = FEE_RATE_NUMERATOR
    denominator: int = FEE_RATE_DENOMINATOR

    def fee_on(self, ticket_minor: int) -> int:
        """5% of ``ticket_minor``, half-up to the minor unit (10.10 -> 0.51)."""
        return _div_half_up(ticket_minor * self.numerator, self.denominator)

    def charge(self, *, outstanding: int, ticket_after: int) -> int:
        """Fee a payment charges: up to ``fee_on(ticket_after)``, never negative
        (a payment never gives fee back; ``outstanding`` is charged − reversed)."""
        return max(0, self.fee_on(ticket_after) - outstanding)

    def reversal(self, *, outstanding: int, ticket_after: int) -> int:
        """Fee a refund, rejection or cancellation gives back: down to
        ``fee_on(ticket_after)`` -- all of it when no ticket money is left."""
        return max(0, outstanding - self.fee_on(ticket_after))


DEFAULT_FEE_POLICY = FeePolicy()
