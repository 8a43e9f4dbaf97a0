"""Checking and showing the credentials an organizer pastes (R1-R3).

Secrets are shown only as ``sk_test_…abcd``: at most the last four characters,
and only when the secret is long enough (>= 16) that four give nothing away.
"""

from __future__ import annotations

from ledger.errors import ValidationFailed
from ledger.providers.base import Credentials
from ledger.providers.description import ProviderDescription

#: Key prefixes worth showing: they tell test from live and secret from
#: restricted keys without revealing anything.
_SAFE_PREFIXES = ("sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_")


def require_fields(description: type[ProviderDescription], creds: Credentials) -> None:
    """Refuse missing or blank required fields before any network call, per field."""
    errors = {
        name: ["is required"]
        for name in description.required_field_names()
        if not isinstance(creds.get(name), str) or not creds[name].strip()
    }
    if errors:
        raise ValidationFailed(errors)


def mask(description: type[ProviderDescription], creds: Credentials) -> dict[str, str]:
    """Credentials safe to show: secrets masked, ids in full.  Fields the
    provider does not use are dropped rather than echoed."""
    secrets = description.secret_field_names()
    shown: dict[str, str] = {}
    for name in description.field_names():
        value = creds.get(name)
        if value is None:
            continue
        shown[name] = _mask_secret(value) if name in secrets else value
    return shown


def _mask_secret(value: str) -> str:
    prefix = next((p for p in _SAFE_PREFIXES if value.startswith(p)), "")
    tail = value[-4:] if len(value) >= 16 else ""
    return f"{prefix}…{tail}"
