"""Issue 13 settings (items 1 and 2): bounded, and the PayPal platform app whole or absent."""

from __future__ import annotations

import pytest

from ledger.config import ConfigurationError, Settings


def _env(**extra: str) -> dict[str, str]:
    return {"LEDGER_SECRET_KEY": "11" * 32, "LEDGER_DATA_DIR": "/tmp/ledger-config-test", **extra}


def test_the_paypal_platform_app_is_all_three_or_none_and_its_secret_is_never_shown() -> None:
    assert Settings.from_env(_env()).paypal_client_id is None
    whole = Settings.from_env(_env(LEDGER_PAYPAL_CLIENT_ID="AX", LEDGER_PAYPAL_CLIENT_SECRET="EX-secret",
                                   LEDGER_PAYPAL_WEBHOOK_ID="WH-1"))
    assert (whole.paypal_client_id, whole.paypal_webhook_id) == ("AX", "WH-1")
    assert "EX-secret" not in repr(whole)
    with pytest.raises(ConfigurationError) as refused:
        Settings.from_env(_env(LEDGER_PAYPAL_CLIENT_ID="AX", LEDGER_PAYPAL_CLIENT_SECRET="EX-secret"))
    assert "set all three or none" in str(refused.value) and "EX-secret" not in str(refused.value)


def test_the_poll_without_webhook_keeps_confirmation_within_a_minute() -> None:
    assert Settings.from_env(_env()).poll_without_webhook_seconds == 30
    with pytest.raises(ConfigurationError, match="LEDGER_POLL_WITHOUT_WEBHOOK_SECONDS"):
        Settings.from_env(_env(LEDGER_POLL_WITHOUT_WEBHOOK_SECONDS="120"))
