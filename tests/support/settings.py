"""Settings for a test ledger: its own data folder, a fixed secret key, and
provider API bases that lead nowhere unless a test points them at its contract
server."""

from __future__ import annotations

from pathlib import Path

from ledger.config import DEFAULT_RATE_LIMITS, Settings


def make_settings(tmp_path: Path, **overrides: str) -> Settings:
    """``Settings.from_env`` with test defaults; ``overrides`` are environment
    variables (``LEDGER_…``) that replace them."""
    env = {
        "LEDGER_DATA_DIR": str(tmp_path / "data"),
        "LEDGER_SECRET_KEY": "11" * 32,
        "LEDGER_PUBLIC_URL": "http://ledger.test",
        "LEDGER_SEAT_HOLD_SECONDS": "1800",
        "LEDGER_MANUAL_HOLD_SECONDS": "1800",
        # Every test client is 127.0.0.1: the limits stay on (so the counters
        # are exercised) but high; tests of the limits set their own.
        **{f"LEDGER_RATE_LIMIT_{name.upper()}": "100000 per minute" for name in DEFAULT_RATE_LIMITS},
        # No test may ever reach a real provider: unroutable unless a test points
        # these at its contract server.
        "LEDGER_STRIPE_API_BASE": "http://127.0.0.1:9",
        "LEDGER_PAYU_API_BASE": "http://127.0.0.1:9",
        "LEDGER_PAYPAL_API_BASE": "http://127.0.0.1:9",
    }
    env.update(overrides)
    return Settings.from_env(env)
