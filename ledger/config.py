"""Settings from the environment (ARCHITECTURE.md's table), read in one place.

Every variable has a working default so that a fresh checkout runs with
nothing configured; production overrides them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

#: Per client (IP address), per operation; ``LEDGER_RATE_LIMIT_<NAME>`` overrides one.
DEFAULT_RATE_LIMITS: dict[str, str] = {
    "registration": "10 per minute; 50 per hour",
    "checkout": "20 per minute",
    "join": "60 per minute",
    "return": "60 per minute",
    "sign_in": "10 per minute; 50 per hour",
}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str | None
    kafka_bootstrap: str | None
    kafka_topic: str
    kafka_partitions: int
    kafka_include_pii: bool
    smtp_url: str | None
    http_host: str
    http_port: int
    public_url: str
    secret_key: bytes
    stripe_api_base: str
    payu_api_base: str
    paypal_api_base: str
    #: R20: how long an open provider checkout holds its seat.
    seat_hold_seconds: int = 900
    #: R20: how long an offline (manual) registration holds its seat.
    manual_hold_seconds: int = 86400
    #: Per-client limits of the public operations (``limits`` notation, e.g.
    #: "10 per minute; 50 per hour"; "off" lifts one), see ``api/rate_limits.py``.
    rate_limits: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    #: Where the counters live: "postgresql" (shared by every API process) or
    #: "memory" (per process: N processes allow N times the limit).
    rate_limit_storage: str = "postgresql"
    #: A participant's return page asks the provider about a checkout at most
    #: this many times a minute (any number of reloads or API processes).
    return_checks_per_minute: int = 3
    #: Proxies in front of the API that append to X-Forwarded-For; 0 = the
    #: socket's peer is the client.
    trusted_proxies: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("LEDGER_DATA_DIR", "./.ledger")).resolve()
        host = env.get("LEDGER_HTTP_HOST", "127.0.0.1")
        port = int(env.get("LEDGER_HTTP_PORT", "8000"))
        return cls(
            data_dir=data_dir,
            database_url=env.get("LEDGER_DATABASE_URL") or None,
            kafka_bootstrap=env.get("LEDGER_KAFKA_BOOTSTRAP") or None,
            kafka_topic=env.get("LEDGER_KAFKA_TOPIC", "ledger.events"),
            kafka_partitions=int(env.get("LEDGER_KAFKA_PARTITIONS", "3")),
            kafka_include_pii=env.get("LEDGER_KAFKA_INCLUDE_PII", "0") == "1",
            smtp_url=env.get("LEDGER_SMTP_URL") or None,
            http_host=host,
            http_port=port,
            public_url=(env.get("LEDGER_PUBLIC_URL") or f"http://{host}:{port}").rstrip("/"),
            secret_key=_secret_key(env, data_dir),
            stripe_api_base=env.get("LEDGER_STRIPE_API_BASE", "https://api.stripe.com"),
            payu_api_base=env.get("LEDGER_PAYU_API_BASE", "https://secure.payu.com"),
            paypal_api_base=env.get("LEDGER_PAYPAL_API_BASE", "https://api-m.paypal.com"),
            seat_hold_seconds=int(env.get("LEDGER_SEAT_HOLD_SECONDS", "900")),
            manual_hold_seconds=int(env.get("LEDGER_MANUAL_HOLD_SECONDS", "86400")),
            rate_limits={
                name: env.get(f"LEDGER_RATE_LIMIT_{name.upper()}", default)
                for name, default in DEFAULT_RATE_LIMITS.items()
            },
            rate_limit_storage=env.get("LEDGER_RATE_LIMIT_STORAGE", "postgresql"),
            return_checks_per_minute=int(env.get("LEDGER_RETURN_CHECKS_PER_MINUTE", "3")),
            trusted_proxies=int(env.get("LEDGER_TRUSTED_PROXIES", "0")),
        )


def _secret_key(env: dict[str, str], data_dir: Path) -> bytes:
    """LEDGER_SECRET_KEY (hex, 32 bytes) or one generated once into the data dir.

    Generated with O_EXCL so that two processes starting together agree on it.
    """
    if env.get("LEDGER_SECRET_KEY"):
        key = bytes.fromhex(env["LEDGER_SECRET_KEY"])
        if len(key) != 32:
            raise ValueError("LEDGER_SECRET_KEY must be 64 hex characters (32 bytes)")
        return key
    path = data_dir / "secret.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    for _ in range(50):
        text = path.read_text().strip()
        if len(text) == 64:
            return bytes.fromhex(text)
        import time

        time.sleep(0.01)
    raise RuntimeError(f"{path} is not a 64-hex-character key")
