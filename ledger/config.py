"""Settings from the environment (ARCHITECTURE.md's table), read and checked in
one place.

Every variable has a working default so that a fresh checkout runs with
nothing configured; production overrides them.  The variables are validated
by pydantic-settings at start-up: a wrong value stops the process with a
message naming the variable (``LEDGER_HTTP_PORT: …``), never a traceback,
and never a silent fallback (``LEDGER_KAFKA_INCLUDE_PII=true`` means true).

One variable is read outside this class, by the component that owns it:
``LEDGER_CHECKPOINT_KEY`` (64 hex characters, the Ed25519 seed that signs the
log's checkpoints, R23) — unset, a key is generated once into
``<LEDGER_DATA_DIR>/checkpoint.key``; see ``ledger.proof.checkpoints`` and
docs/audit.md.  A malformed one makes ``ledger checkpoint`` / ``ledger verify``
exit 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from ledger.key_files import generated_key

ENV_PREFIX = "LEDGER_"


class ConfigurationError(Exception):
    """One or more ``LEDGER_*`` variables are wrong; the message names each."""


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
    #: R1: how often the reconciler polls an open checkout of a connection
    #: without webhooks (a Stripe key alone).
    poll_without_webhook_seconds: int = 30
    #: R2: the platform's PayPal REST app; all three set, or none.
    paypal_client_id: str | None = None
    paypal_client_secret: str | None = field(default=None, repr=False)
    paypal_webhook_id: str | None = None
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
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from ``env`` (default: the process environment).  Raises
        :class:`ConfigurationError` naming every wrong variable."""
        env_map = os.environ if env is None else env
        values = Environment.read(env_map)
        data_dir = values.data_dir.resolve()
        return cls(
            data_dir=data_dir,
            database_url=values.database_url,
            kafka_bootstrap=values.kafka_bootstrap,
            kafka_topic=values.kafka_topic,
            kafka_partitions=values.kafka_partitions,
            kafka_include_pii=values.kafka_include_pii,
            smtp_url=values.smtp_url,
            http_host=values.http_host,
            http_port=values.http_port,
            public_url=(values.public_url or f"http://{values.http_host}:{values.http_port}").rstrip("/"),
            secret_key=values.secret_key or _generated_secret_key(data_dir),
            stripe_api_base=values.stripe_api_base,
            payu_api_base=values.payu_api_base,
            paypal_api_base=values.paypal_api_base,
            seat_hold_seconds=values.seat_hold_seconds,
            manual_hold_seconds=values.manual_hold_seconds,
            poll_without_webhook_seconds=values.poll_without_webhook_seconds,
            paypal_client_id=values.paypal_client_id,
            paypal_client_secret=values.paypal_client_secret,
            paypal_webhook_id=values.paypal_webhook_id,
            rate_limits={
                name: env_map.get(f"LEDGER_RATE_LIMIT_{name.upper()}") or default
                for name, default in DEFAULT_RATE_LIMITS.items()
            },
            rate_limit_storage=values.rate_limit_storage,
            return_checks_per_minute=values.return_checks_per_minute,
            trusted_proxies=values.trusted_proxies,
        )


#: The mapping :meth:`Environment.read` validates (the process environment, or
#: a test's own dict): pydantic-settings reads ``os.environ`` by default.
_SOURCE: ContextVar[Mapping[str, str] | None] = ContextVar("ledger_settings_source", default=None)


class _MappingSource(EnvSettingsSource):
    def _load_env_vars(self) -> Mapping[str, str | None]:
        source = _SOURCE.get()
        env = os.environ if source is None else source
        return {k.lower(): v for k, v in env.items() if k.upper().startswith(ENV_PREFIX) and v != ""}


class Environment(BaseSettings):
    """The ``LEDGER_*`` variables, typed and bounded.  Empty means unset."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore")

    data_dir: Path = Path("./.ledger")
    database_url: str | None = None
    kafka_bootstrap: str | None = None
    kafka_topic: str = Field("ledger.events", min_length=1, max_length=249)
    kafka_partitions: int = Field(3, ge=1, le=1000)
    kafka_include_pii: bool = False
    smtp_url: str | None = Field(None, pattern=r"^smtps?://")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8000, ge=1, le=65535)
    public_url: str | None = Field(None, pattern=r"^https?://")
    secret_key: bytes | None = None
    stripe_api_base: str = Field("https://api.stripe.com", pattern=r"^https?://")
    payu_api_base: str = Field("https://secure.payu.com", pattern=r"^https?://")
    paypal_api_base: str = Field("https://api-m.paypal.com", pattern=r"^https?://")
    #: R20: how long an open checkout holds its seat: 1 minute to 1 day.
    seat_hold_seconds: int = Field(900, ge=60, le=86_400)
    #: R20: how long an offline (manual) registration holds its seat: up to 30 days.
    manual_hold_seconds: int = Field(86_400, ge=1, le=30 * 86_400)
    #: R1: a payment through a connection without webhooks is booked at most
    #: this long (plus the reconciler's 5 s idle wait and one provider call)
    #: after it is made, if the participant does not come back: 1 to 50 s,
    #: so the delay stays within a minute.
    poll_without_webhook_seconds: int = Field(30, ge=1, le=50)
    #: R2: the platform's PayPal REST app (client id, secret, webhook id), so
    #: that organizers connect only their merchant id or e-mail; unset, only
    #: an organizer's own REST app can be connected.
    paypal_client_id: str | None = Field(None, max_length=200)
    paypal_client_secret: str | None = Field(None, max_length=200)
    paypal_webhook_id: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _paypal_all_or_none(self) -> Environment:
        given = [self.paypal_client_id, self.paypal_client_secret, self.paypal_webhook_id]
        if any(given) and not all(given):
            raise ValueError(
                "LEDGER_PAYPAL_CLIENT_ID, LEDGER_PAYPAL_CLIENT_SECRET and LEDGER_PAYPAL_WEBHOOK_ID go together: "
                "set all three or none"
            )
        return self
    rate_limit_storage: Literal["postgresql", "memory"] = "postgresql"
    return_checks_per_minute: int = Field(3, ge=1, le=600)
    trusted_proxies: int = Field(0, ge=0, le=10)
    provider_timeout_seconds: float = Field(10.0, gt=0, le=120)

    @field_validator("secret_key", mode="before")
    @classmethod
    def _hex_key(cls, value: object) -> bytes | None:
        if value is None or isinstance(value, bytes):
            return value
        try:
            key = bytes.fromhex(str(value))
        except ValueError:
            raise ValueError("must be 64 hexadecimal characters (32 bytes)") from None
        if len(key) != 32:
            raise ValueError(f"must be 64 hexadecimal characters (32 bytes), not {len(str(value))}")
        return key

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (_MappingSource(settings_cls),)

    @classmethod
    def read(cls, env: Mapping[str, str]) -> Environment:
        token = _SOURCE.set(env)
        try:
            return cls()
        except ValidationError as exc:
            raise ConfigurationError(_explain(exc, env)) from None
        finally:
            _SOURCE.reset(token)


def _explain(exc: ValidationError, env: Mapping[str, str]) -> str:
    """One line per wrong variable: its name, what is wrong, and the value
    given (never for the secret key)."""
    lines = []
    for error in exc.errors():
        name = ENV_PREFIX + str(error["loc"][0]).upper() if error["loc"] else ENV_PREFIX
        hidden = name in ("LEDGER_SECRET_KEY", "LEDGER_PAYPAL_CLIENT_SECRET") or not error["loc"]
        shown = "" if hidden else f" (got {env.get(name, '')!r})"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}: {message}{shown}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _generated_secret_key(data_dir: Path) -> bytes:
    """The key generated once into the data dir when LEDGER_SECRET_KEY is unset
    (two processes starting together agree on it: ``ledger.key_files``)."""
    return generated_key(data_dir / "secret.key")
