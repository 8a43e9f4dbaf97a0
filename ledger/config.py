"""Settings from the environment (ARCHITECTURE.md's table), read in one place.

Every variable has a working default so that a fresh checkout runs with
nothing configured; production overrides them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path


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
    seat_hold_seconds: int = 1800
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
            seat_hold_seconds=int(env.get("LEDGER_SEAT_HOLD_SECONDS", "1800")),
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
