"""Notification settings: the push backend (a development file sink or FCM), FCM's client,
delivery retries, devices per account, announcement fan-out."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.config import VAR_DIR, get_settings


class NotificationSettings(BaseSettings):
    """Devices, the inbox, push delivery through FCM (`app/notifications`)."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    # `file` (a development sink: the exact FCM JSON, one message a line) or `fcm`. Refused in
    # production: `file`.
    push_backend: Literal["file", "fcm"] = "file"
    # The file sink.
    push_file_path: Path = VAR_DIR / "push.jsonl"
    # The service account's JSON key (its `token_uri` is honoured); needed with `fcm`.
    fcm_credentials_file: Path | None = None
    # FCM's v1 endpoint; tests point it (and the credentials' token_uri) at scripts/fake_fcm.py.
    # https:// in production.
    fcm_base_url: str = "https://fcm.googleapis.com"
    # Default: the credentials' project.
    fcm_project_id: str = ""
    # Timeout of a call to FCM.
    fcm_timeout_seconds: float = 30.0
    # Keep-alive connections to FCM per worker; each carries up to 100 pipelined requests (see
    # app/notifications/http1.py), or HTTP/2 streams with FCM_HTTP_CLIENT=library.
    fcm_max_connections: int = 10
    # `pipelined`: our lean HTTP/1.1 client under firebase-admin (a tenth of the CPU per
    # message); `library`: firebase-admin's own httpx HTTP/2 client.
    fcm_http_client: Literal["pipelined", "library"] = "pipelined"
    # Messages per FCM call (1-500, FCM's limit).
    push_batch_size: int = 500
    # Delivery attempts of a message; UNAVAILABLE, INTERNAL and QUOTA_EXCEEDED are retried.
    push_max_attempts: int = 10
    # The first retry's back-off, doubling (with jitter) with each attempt; a Retry-After from
    # FCM is honoured.
    push_retry_base_seconds: float = 2.0
    # The longest back-off.
    push_retry_max_seconds: float = 900.0
    # Devices an account keeps; the oldest tokens are dropped beyond this.
    push_max_devices_per_user: int = 10
    # Citizens per announcement fan-out job.
    announcement_batch_size: int = 1000

    @model_validator(mode="after")
    def _check(self) -> NotificationSettings:
        if not 1 <= self.push_batch_size <= 500:
            raise ValueError("PUSH_BATCH_SIZE must be 1..500 (FCM's limit per batch)")
        if get_settings().environment == "production":
            self._refuse_unsafe_production_settings()
        return self

    def _refuse_unsafe_production_settings(self) -> None:
        if self.push_backend == "file":
            raise ValueError("PUSH_BACKEND=file is for development only")
        if self.push_backend == "fcm" and self.fcm_credentials_file is None:
            raise ValueError("PUSH_BACKEND=fcm needs FCM_CREDENTIALS_FILE")
        if self.push_backend == "fcm" and not self.fcm_base_url.startswith("https://"):
            raise ValueError(
                "FCM_BASE_URL must be an https:// URL in production (pushes carry "
                "device tokens and personal notifications)"
            )


@lru_cache
def get_notification_settings() -> NotificationSettings:
    return NotificationSettings()
