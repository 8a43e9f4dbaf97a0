"""R16: the platform's 5% service fee, computed per payment when it is recorded.

Why per payment: a report then only *adds* fees that were fixed at payment time,
so every report total equals the sum of its rows and of the payments, to the
cent, whatever the grouping.  Rounding any sum again would break that.

Rounding rule (policy ``fee-v1``): 5% of the payment in minor units, rounded
half-up to the minor unit.  Example: 10.10 PLN → 50.5 grosze → 51 grosze.

Refunds reverse the fee proportionally: refunding ``r`` of a payment ``p``
whose fee was ``f`` credits ``round_half_up(f * r / p)``; a full refund credits
exactly ``f`` (the pieces of several partial refunds are tracked so the last
one takes the remainder, and the total credited never exceeds ``f``).
"""

from __future__ import annotations

from dataclasses import dataclass

FEE_POLICY_VERSION = "fee-v1"
FEE_RATE_NUMERATOR = 5
FEE_RATE_DENOMINATOR = 100


def _div_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounding halves away from zero (amounts are >= 0)."""
    assert numerator >= 0 and denominator > 0
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass(frozen=True)
class FeePolicy:
    version: str = FEE_POLICY_VERSION
    numerator: int = FEE_RATE_NUMERATOR
    denominator: int = FEE_RATE_DENOMINATOR

    def fee_for_payment(self, paid_minor: int) -> int:
        return _div_half_up(paid_minor * self.numerator, self.denominator)

    def fee_reversal(
        self, *, paid_minor: int, fee_minor: int, refunded_before: int, refund_minor: int,
        reversed_before: int,
    ) -> int:
        """Fee credited back for a refund, so that cumulative reversals track the
        cumulative refunded share and a full refund reverses the whole fee."""
        refunded_after = min(refunded_before + refund_minor, paid_minor)
        if paid_minor == 0:
            return 0
        target = _div_half_up(fee_minor * refunded_after, paid_minor)
        return max(0, min(fee_minor, target) - reversed_before)


DEFAULT_FEE_POLICY = FeePolicy()
