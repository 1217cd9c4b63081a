"""Media settings (env: MEDIA_DIR, MEDIA_MAX_UPLOAD_BYTES, MEDIA_STORAGE_BACKEND)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.config import VAR_DIR


class MediaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    media_dir: Path = VAR_DIR / "media"
    media_storage_backend: Literal["local"] = "local"
    # Hard ceiling of one multipart upload; each use (a procedure's document) may set a lower one.
    media_max_upload_bytes: int = 20 * 1024 * 1024


@lru_cache
def get_media_settings() -> MediaSettings:
    return MediaSettings()
