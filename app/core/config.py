"""Settings from environment variables (and `.env`), with safe development defaults.

Every setting is documented in README.md and `.env.example`. In production the service refuses to
start with the development secrets or with any setting that is safe only on a developer's machine
(an `http://` issuer, file sinks, internal routes on the public listener); each refusal names the
setting to change.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = PROJECT_ROOT / "var"

DEV_SECRET_KEY = "dev-only-secret-key-change-me-0123456789abcdef"  # noqa: S105
# 32 bytes, base64url: AES-256-GCM key for personal data at rest (development only).
DEV_PII_KEY = "ZGV2LW9ubHktcGlpLWtleS0zMi1ieXRlcy1sb25nISE="


class Settings(BaseSettings):
    # hide_input_in_errors: a refused setting's error must not print the other settings' values
    # (secrets) into a start-up log.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False,
                                      hide_input_in_errors=True)

    environment: Literal["development", "production", "test"] = "development"
    host: str = "127.0.0.1"
    port: int = 8000
    public_base_url: str = ""
    database_url: str = f"sqlite+aiosqlite:///{VAR_DIR / 'app.db'}"
    database_pool_size: int = 10
    database_pool_pre_ping: bool = True
    database_direct_connections: int | None = None  # by database: see db.direct_connections
    database_echo: bool = False

    secret_key: str = DEV_SECRET_KEY
    pii_encryption_key: str = DEV_PII_KEY
    pii_blind_index_key: str = ""

    log_level: str = "INFO"
    log_format: Literal["json", "console"] = "json"
    max_request_body_bytes: int = 1_048_576

    run_worker_in_process: bool = True
    worker_poll_interval_seconds: float = 1.0
    # `python -m app worker` lowers its CPU priority by this much (0-19, as `nice`): on a host
    # shared with the API, a burst of picture processing must not slow the acknowledgements.
    worker_niceness: int = Field(default=10, ge=0, le=19)
    # Jobs a worker runs at once (each a task on its event loop; OpenCV work in threads).
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    job_lease_seconds: int = 300
    job_max_attempts: int = 8
    job_modules: list[str] = Field(default_factory=list)
    worker_schedules_periodic_jobs: bool = True
    job_retention_days: int = 7
    dead_job_retention_days: int = 30

    sms_backend: Literal["file", "http"] = "file"
    sms_file_path: Path = VAR_DIR / "sms.jsonl"
    sms_gateway_url: str = ""
    sms_gateway_api_key: str = ""
    sms_sender_name: str = "TNID"

    otp_ttl_seconds: int = 300
    otp_max_attempts: int = 5
    otp_resend_interval_seconds: int = 60
    otp_per_phone_per_hour: int = 5
    otp_per_ip_per_hour: int = 30
    # Code checks across every challenge: 5 attempts a code would otherwise be 5 per code sent.
    otp_checks_per_phone_per_hour: int = 10
    otp_checks_per_ip_per_hour: int = 60
    # CCCD declarations: enough to correct a typo, too few to enumerate who is registered.
    cccd_declarations_per_account_per_day: int = 5
    cccd_declarations_per_ip_per_day: int = 20

    access_token_ttl_seconds: int = 900
    refresh_token_ttl_days: int = 30
    refresh_reuse_grace_seconds: int = 0
    first_party_audience: str = "thainguyen-app"

    # OpenID Connect provider (app.oauth)
    oauth_code_ttl_seconds: int = 120
    oauth_request_ttl_seconds: int = 600
    oauth_access_token_ttl_seconds: int = 600
    oauth_id_token_ttl_seconds: int = 600
    oauth_refresh_grace_seconds: int = 10
    oauth_browser_session_days: int = 7

    password_min_length: int = 8
    # argon2id cost; lower only in tests (the suite hashes hundreds of passwords).
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 65536
    password_hash_parallelism: int = 2
    login_free_failures: int = 5
    login_lock_base_seconds: int = 30
    login_lock_max_seconds: int = 900
    login_per_ip_per_minute: int = 60

    # Push notifications (app.notifications). FCM_BASE_URL and the credentials' token_uri let the
    # real firebase-admin client talk to a local fake (scripts/fake_fcm.py).
    push_backend: Literal["file", "fcm"] = "file"
    push_file_path: Path = VAR_DIR / "push.jsonl"
    fcm_credentials_file: Path | None = None
    fcm_base_url: str = "https://fcm.googleapis.com"
    fcm_project_id: str = ""
    fcm_timeout_seconds: float = 30.0
    # Keep-alive connections per worker; each carries up to 100 pipelined requests (see
    # app/notifications/http1.py), or HTTP/2 streams with FCM_HTTP_CLIENT=library.
    fcm_max_connections: int = 10
    fcm_http_client: Literal["pipelined", "library"] = "pipelined"
    push_batch_size: int = 500
    push_max_attempts: int = 10
    push_retry_base_seconds: float = 2.0
    push_retry_max_seconds: float = 900.0
    push_max_devices_per_user: int = 10
    announcement_batch_size: int = 1000

    privacy_policy_version: str = "2026-01"
    audit_retention_days: int = 1825

    # Internal endpoints (/internal/...): camera webhooks and other machine-to-machine calls.
    # Must be false in production (the internal listener, INTERNAL_PORT, serves them there).
    internal_routes_on_public_listener: bool = True
    internal_host: str = "127.0.0.1"
    internal_port: int | None = None
    # /docs, /redoc and /openapi.json on the public listener. Default: yes outside production; in
    # production only on the internal listener unless set to true (a published API reference).
    # /metrics is never public in production.
    api_docs_public: bool | None = None
    internal_allowed_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12",
                                 "192.168.0.0/16", "fc00::/7"]
    )

    # Camera alerts (app/cameras).
    camera_webhook_secrets: Annotated[list[str], NoDecode] = Field(default_factory=list)
    camera_snapshot_max_bytes: int = 524_288
    camera_snapshot_max_pixels: int = 24_000_000
    camera_offline_after_seconds: int = 900
    camera_offline_check_interval_seconds: int = 300
    camera_original_retention_days: int = 30
    camera_warning_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"accident": 0.8, "flooding": 0.7, "fire": 0.8}
    )
    camera_warning_cell_rings: int = 1
    camera_warning_interval_minutes: int = 30

    @field_validator("internal_allowed_networks", "camera_webhook_secrets", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """A JSON list, or values separated by commas or spaces (easier in a secret store)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part for part in re.split(r"[,\s]+", text) if part]
        return value

    @field_validator("camera_webhook_secrets")
    @classmethod
    def _check_secrets(cls, value: list[str]) -> list[str]:
        import base64
        import binascii

        for secret in value:
            try:
                text = secret.removeprefix("whsec_")
                key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if not secret.startswith("whsec_") or len(key) < 18:
                raise ValueError("each CAMERA_WEBHOOK_SECRETS entry must be whsec_ + base64 "
                                 "of at least 18 random bytes")
        return value

    @field_validator("internal_allowed_networks")
    @classmethod
    def _check_networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for network in value:
            ipaddress.ip_network(network, strict=False)
        return value

    @model_validator(mode="after")
    def _derive_and_check(self) -> Settings:
        if not self.public_base_url:
            self.public_base_url = f"http://{self.host}:{self.port}"
        self.public_base_url = self.public_base_url.rstrip("/")
        if not self.pii_blind_index_key:
            self.pii_blind_index_key = self.secret_key + ":blind-index"
        if self.sms_backend == "http" and not self.sms_gateway_url:
            raise ValueError("SMS_BACKEND=http needs SMS_GATEWAY_URL")
        if self.api_docs_public is None:
            self.api_docs_public = self.environment != "production"
        if self.environment == "production":
            self._refuse_unsafe_production_settings()
        if not 1 <= self.push_batch_size <= 500:
            raise ValueError("PUSH_BATCH_SIZE must be 1..500 (FCM's limit per batch)")
        return self

    def _refuse_unsafe_production_settings(self) -> None:
        """Each message names the setting to change: the operator reads it in the start-up error."""
        if not self.public_base_url.startswith("https://"):
            raise ValueError("PUBLIC_BASE_URL must be an https:// URL in production (it is the "
                             "OpenID Connect issuer; cookies are Secure only over https)")
        if self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            raise ValueError("SECRET_KEY must be set to a random value of 32+ characters")
        if self.pii_encryption_key == DEV_PII_KEY:
            raise ValueError("PII_ENCRYPTION_KEY must be set in production")
        if self.password_hash_memory_kib < 19456 or self.password_hash_time_cost < 2:
            raise ValueError("argon2 cost below OWASP's minimum (19 MiB, 2 passes)")
        if self.sms_backend == "file":
            raise ValueError("SMS_BACKEND=file is for development only")
        if self.push_backend == "file":
            raise ValueError("PUSH_BACKEND=file is for development only")
        if self.push_backend == "fcm" and self.fcm_credentials_file is None:
            raise ValueError("PUSH_BACKEND=fcm needs FCM_CREDENTIALS_FILE")
        if self.push_backend == "fcm" and not self.fcm_base_url.startswith("https://"):
            raise ValueError("FCM_BASE_URL must be an https:// URL in production (pushes carry "
                             "device tokens and personal notifications)")
        if self.log_level.upper() == "DEBUG":
            raise ValueError("LOG_LEVEL=DEBUG is for development only (database drivers then log "
                             "every query's parameters: personal data, secrets)")
        if self.internal_routes_on_public_listener:
            raise ValueError("INTERNAL_ROUTES_ON_PUBLIC_LISTENER must be false in production "
                             "(serve /internal/ on INTERNAL_PORT)")
        if self.internal_port is None or self.internal_port == self.port:
            raise ValueError("INTERNAL_PORT must be set in production, apart from PORT (internal "
                             "routes and /metrics are served only there)")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def issuer(self) -> str:
        return self.public_base_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
