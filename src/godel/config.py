"""Settings from GODEL_* environment variables, validated once at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from godel.credentials import KeySpec, parse_api_keys
from godel.errors import ConfigError
from godel.fastlane.address import parse_redis_url

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
# As scripts/gen-prometheusrule.py: the upstream repository's docs/runbooks.
DEFAULT_RUNBOOK_BASE_URL = "https://github.com/godel-platform/godel/blob/main/docs/runbooks"


class Settings(BaseSettings):
    """Every knob Godel has. Each field is `GODEL_<NAME>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="GODEL_", extra="ignore", frozen=True)

    redis_url: str | None = Field(
        default=None,
        description="Redis URL: redis:// or rediss:// (TLS) for one server, "
        "redis+sentinel://host:port[,host:port…]/<master>[/<db>] behind Sentinel, "
        "redis+cluster://host:port[,host:port…] for a Cluster (rediss+… for TLS); "
        "user:password@ and options such as ?ssl_ca_certs=/ca.pem. Unset: the embedded "
        "default (a private redis-server when installed, else redis://localhost:6379/0).",
    )
    database_url: str = Field(default="", description="SQLAlchemy URL of the events ledger.")
    data_dir: Path = Field(default=Path(".godel"), description="Where embedded state lives.")
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token with the admin scope (implies read and publish)."
    )
    api_keys: SecretStr | None = Field(
        default=None,
        description="More keys: comma-separated <name>:<scopes>:<secret>, scopes joined by + "
        "(publish, read, admin).",
    )
    auth_mode: Literal["required", "open"] = Field(
        default="required",
        description="open: every request is allowed without a credential (local experiments).",
    )
    metrics_require_auth: bool = Field(
        default=False, description="GET /metrics needs the read scope (default: open)."
    )
    session_secret: SecretStr | None = Field(
        default=None,
        description="Signs dashboard session cookies; unset: derived from GODEL_ADMIN_TOKEN. "
        "Every API instance must share it.",
    )
    session_ttl_s: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    key_cache_ttl_s: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="How long an instance trusts its cached copy of a stored key: a revoked "
        "key stops working everywhere within this time.",
    )
    embedded_redis: bool = Field(
        default=True,
        description="Run a private redis-server when "
        "GODEL_REDIS_URL is unset and redis-server is on PATH.",
    )
    log_level: str = "INFO"
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="NORMAL",
        description="SQLite WAL fsync policy: NORMAL survives any crash of Godel; FULL also "
        "survives power loss, at the cost of an fsync per commit.",
    )

    redis_socket_timeout_s: float = Field(default=0.5, gt=0, le=60)
    redis_connect_timeout_s: float = Field(default=0.5, gt=0, le=60)
    redis_confirm_timeout_s: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="A Redis call that timed out is confirmed by a PING on a fresh "
        "connection with this timeout: an answer means a busy host, not an outage (the fast "
        "lane stays open); no answer is the outage.",
    )
    redis_block_timeout_s: float = Field(default=1.0, gt=0, le=30)
    probe_backoff_min_s: float = Field(default=0.2, gt=0)
    probe_backoff_max_s: float = Field(default=5.0, gt=0)
    redis_info_interval_s: float = Field(default=5.0, gt=0)

    memory_cache_max_entries: int = Field(default=10_000, ge=1)
    memory_cache_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    cache_ttl_s: int = Field(default=300, ge=1)

    max_payload_bytes: int = Field(default=64 * 1024, ge=64)
    max_batch_events: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Largest body of POST /api/v1/events, checked before it is read (413); "
        "every other route takes at most 64 KiB.",
    )
    max_agent_metadata_bytes: int = Field(
        default=16 * 1024, ge=2, description="Largest agent metadata, serialised (422)."
    )
    header_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="The request line and headers arrive within."
    )
    body_timeout_s: float = Field(
        default=15.0, gt=0, le=600, description="A request body arrives whole within (408)."
    )
    max_connections: int = Field(
        default=1000, ge=1, description="Open connections and requests per `godel serve` (503)."
    )
    agent_rate_per_s: float = Field(
        default=1000.0, ge=0, description="Events per second per agent id (0: no limit)."
    )
    agent_burst: int = Field(
        default=5000, ge=0, description="Events an agent may send at once (0: no limit)."
    )
    key_rate_per_s: float = Field(
        default=0.0, ge=0, description="Events per second per API key (0: no limit)."
    )
    key_burst: int = Field(default=5000, ge=1, description="Events a key may send at once.")
    rate_limit_hold_ms: float = Field(
        default=200.0,
        ge=0,
        le=10_000,
        description="A rate limit's 429 is sent this late (never later than its Retry-After): "
        "a client that resends at once is slowed to its connections' pace instead of taking "
        "the CPU other agents need (0: at once).",
    )
    ingest_commit_max_rows: int = Field(default=2000, ge=1)
    worker_batch_size: int = Field(default=100, ge=1, le=10_000)
    worker_linger_ms: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="A busy worker whose queue just ran dry waits this long for more events "
        "once one arrives, and takes them as one batch (an idle worker does not wait).",
    )
    replay_batch_size: int = Field(default=2000, ge=1, le=100_000)

    workers: int = Field(default=1, ge=0, le=64, description="Workers inside `godel serve`.")
    worker_lease_s: float = Field(default=30.0, gt=0)
    handlers: str = Field(default="", description="Comma-separated plugin modules to import.")

    retry_max_attempts: int = Field(default=5, ge=1)
    retry_backoff_base_ms: int = Field(default=500, ge=1)
    retry_backoff_max_ms: int = Field(default=60_000, ge=1)

    reconcile_deadline_s: float = Field(default=60.0, gt=0)
    reconcile_interval_s: float = Field(default=5.0, gt=0)
    metrics_interval_s: float = Field(default=2.0, gt=0)
    history_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds between the dashboard's history samples (720 kept per series, "
        "in the API process's memory: an hour at 5 s).",
    )
    runbook_base_url: str = Field(
        default=DEFAULT_RUNBOOK_BASE_URL,
        description="Where docs/runbooks/ is published; the dashboard links "
        "<base>/REDIS_OUTAGE.md#… (the alerts' runbook_url use the same base).",
    )

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        parse_redis_url(value)  # ValueError: one line, never the password
        return value

    @field_validator("runbook_base_url")
    @classmethod
    def _check_runbook_base_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError("must be a sqlite:/// or postgresql+psycopg:// URL")
        return value

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @field_validator("api_keys")
    @classmethod
    def _check_api_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_api_keys(value.get_secret_value())  # ValueError: one line, never the secret
        return value

    @model_validator(mode="after")
    def _check_admin_token_apart(self) -> Settings:
        token = self.admin_token.get_secret_value() if self.admin_token else ""
        clash = [k.name for k in self.env_keys if token and k.secret.get_secret_value() == token]
        if clash:
            raise ValueError(f"GODEL_API_KEYS: key {clash[0]!r} has GODEL_ADMIN_TOKEN's secret")
        return self

    @model_validator(mode="after")
    def _check_bounds(self) -> Settings:
        if self.probe_backoff_max_s < self.probe_backoff_min_s:
            raise ValueError("GODEL_PROBE_BACKOFF_MAX_S must be >= GODEL_PROBE_BACKOFF_MIN_S")
        if self.retry_backoff_max_ms < self.retry_backoff_base_ms:
            raise ValueError("GODEL_RETRY_BACKOFF_MAX_MS must be >= GODEL_RETRY_BACKOFF_BASE_MS")
        if self.max_body_bytes < self.max_payload_bytes:
            raise ValueError("GODEL_MAX_BODY_BYTES must be >= GODEL_MAX_PAYLOAD_BYTES")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'godel.db'}"

    @property
    def effective_redis_url(self) -> str:
        return self.redis_url or DEFAULT_REDIS_URL

    @property
    def env_keys(self) -> list[KeySpec]:
        """The keys of GODEL_API_KEYS (validated at start)."""
        return parse_api_keys(self.api_keys.get_secret_value()) if self.api_keys else []

    @property
    def handler_modules(self) -> list[str]:
        return [name.strip() for name in self.handlers.split(",") if name.strip()]


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, turning a validation failure into one line naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        name = f"GODEL_{field.upper()}" if first["loc"] else "configuration"
        raise ConfigError(f"invalid {name}: {first['msg']}") from None
