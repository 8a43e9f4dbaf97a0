"""Build signed webhook deliveries with each provider's real algorithm.

Pure functions returning ``(headers, body)`` so a test can POST them itself,
plus the bad variants a verifier must refuse:

* ``tampered``: the body changed after signing;
* ``stale``: signed long ago (Stripe, PayPal; PayU's scheme carries no time);
* ``wrong_key``: signed with another secret / for another webhook.

Algorithms:

* Stripe: ``Stripe-Signature: t={unix},v1={hex HMAC-SHA256(secret, f"{t}.{body}")}``.
* PayU: ``OpenPayu-Signature: sender=checkout;signature={hex algo(body +
  second_key)};algorithm=MD5|SHA-256;content=DOCUMENT``.
* PayPal: ``PAYPAL-TRANSMISSION-*`` headers over
  ``{transmission_id}|{transmission_time}|{webhook_id}|{crc32(body)}``.  Real
  PayPal signs that string with an RSA key behind ``cert_url``; the contract
  server signs it with HMAC-SHA256 under its own key, and its own
  verify-webhook-signature endpoint (the only verifier the gateway uses)
  checks it, so the gateway-visible contract is the same.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

Variant = Literal["valid", "tampered", "stale", "wrong_key"]
SignedWebhook = tuple[dict[str, str], bytes]

STALE_SECONDS = 600
#: PayPal's stale: beyond its retry horizon (3 days, plus the ledger's margin).
PAYPAL_STALE_SECONDS = 5 * 24 * 3600


def canonical_json(payload: Any) -> bytes:
    """Compact JSON: what the servers send and what PayPal's verifier hashes."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def tamper(body: bytes) -> bytes:
    """The same event with one field changed, as an attacker would."""
    payload = json.loads(body)
    payload["tampered"] = True
    return canonical_json(payload)


# -- Stripe ---------------------------------------------------------------


def stripe_signature(body: bytes, secret: str, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def stripe_signed(
    event: Mapping[str, Any],
    secret: str,
    *,
    timestamp: int | None = None,
    variant: Variant = "valid",
) -> SignedWebhook:
    body = canonical_json(event)
    stamp = timestamp if timestamp is not None else int(time.time())
    if variant == "stale":
        stamp -= STALE_SECONDS
    key = secret + "-other" if variant == "wrong_key" else secret
    header = stripe_signature(body, key, stamp)
    if variant == "tampered":
        body = tamper(body)
    return {"Content-Type": "application/json", "Stripe-Signature": header}, body


# -- PayU -----------------------------------------------------------------

_PAYU_DIGESTS = {"MD5": "md5", "SHA-256": "sha256", "SHA256": "sha256"}


def payu_signature(body: bytes, second_key: str, algorithm: str = "MD5") -> str:
    digest = hashlib.new(_PAYU_DIGESTS[algorithm], body + second_key.encode()).hexdigest()
    return f"sender=checkout;signature={digest};algorithm={algorithm};content=DOCUMENT"


def payu_signed(
    payload: Mapping[str, Any],
    second_key: str,
    *,
    algorithm: str = "MD5",
    variant: Variant = "valid",
) -> SignedWebhook:
    if variant == "stale":
        raise ValueError("PayU signatures carry no time: there is no stale variant")
    body = canonical_json(payload)
    key = "0" * 32 if variant == "wrong_key" else second_key
    header = payu_signature(body, key, algorithm)
    if variant == "tampered":
        body = tamper(body)
    return {"Content-Type": "application/json", "OpenPayu-Signature": header}, body


# -- PayPal ---------------------------------------------------------------


def paypal_signature(
    signing_key: bytes, transmission_id: str, transmission_time: str, webhook_id: str, body: bytes
) -> str:
    message = f"{transmission_id}|{transmission_time}|{webhook_id}|{zlib.crc32(body)}"
    return base64.b64encode(hmac.new(signing_key, message.encode(), hashlib.sha256).digest()).decode()


def paypal_signed(
    event: Mapping[str, Any],
    *,
    signing_key: bytes,
    webhook_id: str,
    cert_url: str,
    transmission_time: datetime | None = None,
    variant: Variant = "valid",
) -> SignedWebhook:
    body = canonical_json(event)
    sent = transmission_time or datetime.now(UTC)
    if variant == "stale":
        sent -= timedelta(seconds=PAYPAL_STALE_SECONDS)
    stamp = sent.isoformat(timespec="seconds").replace("+00:00", "Z")
    transmission_id = str(uuid.uuid4())
    signed_for = webhook_id + "-OTHER" if variant == "wrong_key" else webhook_id
    signature = paypal_signature(signing_key, transmission_id, stamp, signed_for, body)
    if variant == "tampered":
        body = tamper(body)
    headers = {
        "Content-Type": "application/json",
        "PAYPAL-TRANSMISSION-ID": transmission_id,
        "PAYPAL-TRANSMISSION-TIME": stamp,
        "PAYPAL-TRANSMISSION-SIG": signature,
        "PAYPAL-CERT-URL": cert_url,
        "PAYPAL-AUTH-ALGO": "SHA256withRSA",
    }
    return headers, body
