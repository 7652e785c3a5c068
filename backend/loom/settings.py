"""Loom's settings: the one place that reads the environment.

Every other module receives a :class:`Settings` instance (or values taken from it).
Loom's own variables use the ``LOOM_`` prefix; the conventional provider variables
(``OPENAI_API_KEY``, ``OPENAI_BASE_URL``, ``AZURE_OPENAI_*``, ``TAVILY_API_KEY``) are read
under their usual names so an existing shell set-up just works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The shortest HMAC secret production accepts: 256 bits, HS256's own hash size.
MIN_HMAC_SECRET_BYTES = 32


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LOOM_",
        env_file=None,
        extra="ignore",
        populate_by_name=True,
    )

    # --- server -----------------------------------------------------------------------------
    # Unset: 127.0.0.1 in cookie mode (development: the cookie trusts any client), else 0.0.0.0.
    host: str = ""
    port: int = Field(default=8100, ge=1, le=65535)
    processes: int = Field(
        default=1,
        ge=1,
        le=64,
        validation_alias=_env("LOOM_PROCESSES", "LOOM_WORKERS", "processes"),
        description="server processes (LOOM_WORKERS is the old name)",
    )
    env: Literal["development", "production"] = "development"
    log_level: str = "info"
    # ``json``: one JSON object per line, with the request, user, thread and run ids.
    log_format: Literal["text", "json"] = "text"
    # GET /metrics on every server process; ``loom worker`` serves them on this port (0: off).
    metrics_enabled: bool = True
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # OpenTelemetry traces (needs the ``otel`` extra): off unless an exporter is named.
    otel_exporter: Literal["none", "otlp", "console"] = "none"
    otel_endpoint: str | None = None  # OTLP/HTTP traces URL (default: the SDK's own)
    otel_service_name: str = "loom"
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Proxies whose X-Forwarded-Proto/-For uvicorn believes (comma-separated IPs or
    # networks, ``*`` for any): a request they forward as https gets HSTS.
    forwarded_allow_ips: str = "127.0.0.1"
    # Strict-Transport-Security max-age on responses to https requests (0: no header).
    hsts_seconds: int = Field(default=365 * 24 * 3600, ge=0)
    frontend_dist: Path = Path("frontend/dist")

    # --- storage ----------------------------------------------------------------------------
    database_url: str | None = None
    data_dir: Path = Path(".loom")
    db_pool_min: int = Field(default=2, ge=1)
    db_pool_max: int = Field(default=20, ge=1)
    # Off behind a connection pooler that cannot keep prepared statements (PgBouncer < 1.21
    # in transaction mode).
    db_prepared_statements: bool = True
    # Surviving a database restart (see db/pool.py): pooled connections idle this long are
    # checked before use (0: every checkout); idle connections are closed, old ones replaced.
    db_check_after_idle_seconds: float = Field(default=1.0, ge=0)
    db_pool_max_idle_seconds: float = Field(default=300.0, gt=0)
    db_pool_max_lifetime_seconds: float = Field(default=3600.0, gt=0)
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    redis_url: str | None = None
    redis_prefix: str = "loom:"
    checkpoint_snapshot_frequency: int = Field(default=1000, ge=1)

    # --- runs: queue, workers, streams ---------------------------------------------------------
    # ``loom serve`` runs a worker inside each server process unless --no-worker says not to.
    in_process_worker: bool = True
    worker_concurrency: int = Field(default=64, ge=1, le=1000)
    lease_seconds: float = Field(default=30.0, ge=1.0)
    run_max_attempts: int = Field(default=3, ge=1, le=100)
    drain_seconds: float = Field(default=30.0, ge=0.0)
    worker_poll_seconds: float = Field(default=2.0, gt=0)
    stream_ttl_seconds: float = Field(default=600.0, ge=1.0)

    # --- limits and quotas, per user (0: no limit) ---------------------------------------------
    # Authenticated requests per minute (a fixed one-minute window; in Redis when configured,
    # so shared by every process, else counted by each process on its own).
    rate_limit_per_minute: int = Field(default=600, ge=0)
    # Runs pending or running at once, counted in Postgres when a run is created.
    max_active_runs: int = Field(default=10, ge=0)
    # Run streams open at once (Redis when configured, else per process).
    max_open_streams: int = Field(default=10, ge=0)
    # Bytes uploaded per UTC day (POST /ingest, /v1/files, ChatKit attachments), in Postgres.
    ingest_bytes_per_day: int = Field(default=1024 * 1024 * 1024, ge=0)

    # --- auth -------------------------------------------------------------------------------
    auth: Literal["cookie", "jwt", "oidc"] = "cookie"
    jwt_secret: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_algorithms: list[str] = ["HS256"]
    jwt_issuer: str | None = None
    # Checked in JWT and OIDC tokens alike (LOOM_OIDC_AUDIENCE is another name for it).
    jwt_audience: str | None = Field(
        default=None,
        validation_alias=_env("LOOM_JWT_AUDIENCE", "LOOM_OIDC_AUDIENCE", "jwt_audience"),
    )
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    oidc_jwks_refetch_seconds: float = 60.0

    # --- models -----------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("OPENAI_API_KEY", "LOOM_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=_env("OPENAI_BASE_URL", "LOOM_OPENAI_BASE_URL")
    )
    azure_openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("AZURE_OPENAI_API_KEY", "LOOM_AZURE_OPENAI_API_KEY")
    )
    azure_openai_endpoint: str | None = Field(
        default=None, validation_alias=_env("AZURE_OPENAI_ENDPOINT", "LOOM_AZURE_OPENAI_ENDPOINT")
    )
    azure_openai_api_version: str = Field(
        default="2024-10-21",
        validation_alias=_env("AZURE_OPENAI_API_VERSION", "LOOM_AZURE_OPENAI_API_VERSION"),
    )
    azure_openai_deployment: str | None = Field(
        default=None,
        validation_alias=_env("AZURE_OPENAI_DEPLOYMENT_NAME", "LOOM_AZURE_OPENAI_DEPLOYMENT"),
    )
    # Override the provider-side model name of a registry entry: {"gpt-4o-mini": "llama3.1"}.
    model_names: dict[str, str] = {}
    default_model: str = "gpt-4o-mini"
    model_timeout_seconds: float = Field(default=60.0, gt=0)
    model_max_retries: int = Field(default=2, ge=0, le=10)
    recursion_limit: int = Field(default=25, ge=2)
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0)

    # --- tools ------------------------------------------------------------------------------
    tavily_api_key: SecretStr | None = Field(
        default=None, validation_alias=_env("TAVILY_API_KEY", "LOOM_TAVILY_API_KEY")
    )
    tavily_base_url: str = "https://api.tavily.com"
    wikipedia_base_url: str = "https://en.wikipedia.org/w/api.php"
    ddg_base_url: str = "https://html.duckduckgo.com/html/"
    arxiv_base_url: str = "https://export.arxiv.org/api/query"
    pubmed_base_url: str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"
    tool_timeout_seconds: float = Field(default=20.0, gt=0)
    fetch_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    fetch_allow_private: bool = False

    # --- retrieval --------------------------------------------------------------------------
    embedding_model: str = "text-embedding-3-small"
    embedding_base_url: str | None = None  # defaults to openai_base_url
    embedding_dimensions: int = Field(default=1536, ge=1, le=16000)
    ingest_max_file_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    ingest_max_request_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    # Reading uploads: a bounded pool of parser threads, a time limit per file, and caps
    # checked before parsing (PDF pages; a DOCX's uncompressed size and zip entries).
    ingest_parse_workers: int = Field(default=2, ge=1, le=64)
    ingest_parse_seconds: float = Field(default=60.0, gt=0)
    ingest_max_pdf_pages: int = Field(default=1000, ge=1)
    ingest_max_docx_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    ingest_max_docx_entries: int = Field(default=2000, ge=1)
    chunk_size: int = Field(default=1000, ge=100)
    chunk_overlap: int = Field(default=200, ge=0)
    retrieval_k: int = Field(default=4, ge=1, le=50)

    @field_validator(
        "database_url",
        "redis_url",
        "openai_base_url",
        "embedding_base_url",
        "azure_openai_endpoint",
        "azure_openai_deployment",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # ``OPENAI_BASE_URL=`` (e.g. from docker compose's ${OPENAI_BASE_URL:-}) means unset.
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _check_auth(self) -> Settings:
        if not self.host:
            self.host = "127.0.0.1" if self.auth == "cookie" else "0.0.0.0"
        if self.env == "production":
            self._check_production()
        if self.auth == "jwt" and self.jwt_secret is None and self.jwt_public_key is None:
            raise ValueError("LOOM_AUTH=jwt needs LOOM_JWT_SECRET or LOOM_JWT_PUBLIC_KEY")
        if self.auth == "oidc" and not self.oidc_jwks_url:
            raise ValueError("LOOM_AUTH=oidc needs LOOM_OIDC_JWKS_URL")
        allowed = {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384"}
        bad = [a for a in self.jwt_algorithms if a not in allowed]
        if bad:
            raise ValueError(f"LOOM_JWT_ALGORITHMS has unsupported algorithms: {bad}")
        if self.redis_url is None and self.processes > 1:
            raise ValueError(
                "LOOM_PROCESSES > 1 needs LOOM_REDIS_URL: runs and their streams are shared "
                "between processes through Redis"
            )
        if self.redis_url is None and not self.in_process_worker:
            raise ValueError(
                "serving without an in-process worker (--no-worker) needs LOOM_REDIS_URL: "
                "runs executed by `loom worker` processes are streamed through Redis"
            )
        if self.chunk_overlap >= self.chunk_size:
            raise ValueError("LOOM_CHUNK_OVERLAP must be smaller than LOOM_CHUNK_SIZE")
        return self

    def _check_production(self) -> None:
        if self.auth == "cookie":
            raise ValueError(
                "LOOM_AUTH=cookie trusts any client-chosen user id and is for development only; "
                "set LOOM_AUTH=jwt or LOOM_AUTH=oidc when LOOM_ENV=production"
            )
        if self.auth == "oidc" and not (self.oidc_issuer and self.jwt_audience):
            raise ValueError(
                "LOOM_AUTH=oidc with LOOM_ENV=production needs LOOM_OIDC_ISSUER and "
                "LOOM_JWT_AUDIENCE (or LOOM_OIDC_AUDIENCE): without them a token any client "
                "of the provider got would be accepted"
            )
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        if secret is not None and len(secret.encode("utf-8")) < MIN_HMAC_SECRET_BYTES:
            raise ValueError(
                f"LOOM_JWT_SECRET must be at least {MIN_HMAC_SECRET_BYTES} bytes when "
                "LOOM_ENV=production (e.g. `openssl rand -hex 32`)"
            )

    @property
    def heartbeat_seconds(self) -> float:
        """How often a worker renews its leases: three times per lease."""
        return self.lease_seconds / 3

    @property
    def sweep_seconds(self) -> float:
        """How often workers look for expired leases."""
        return min(self.lease_seconds / 2, 15.0)

    @property
    def embeddings_url(self) -> str | None:
        return self.embedding_base_url or self.openai_base_url


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; keyword overrides win (used by tests and the CLI)."""
    return Settings(**overrides)  # type: ignore[arg-type]
