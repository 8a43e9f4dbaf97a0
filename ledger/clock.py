"""What time it is, as a parameter: tests and benchmarks pass their own clock
so that seat holds (R20) and report periods are reproducible."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    """The wall clock, always timezone-aware UTC (stored times are UTC)."""
    return datetime.now(UTC)
