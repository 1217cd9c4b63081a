"""Media settings: where files live, upload limits and quota, tus, photo/video limits and
processing, signed URLs, S3.

Env: MEDIA_DIR, MEDIA_MAX_UPLOAD_BYTES, MEDIA_MAX_IMAGE_PIXELS, MEDIA_MAX_VIDEO_*,
MEDIA_QUOTA_BYTES, MEDIA_UPLOADS_PER_HOUR, MEDIA_ORPHAN_RETENTION_HOURS, MEDIA_TUS_*,
MEDIA_URL_TTL_SECONDS, MEDIA_STORAGE, MEDIA_S3_*.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.config import VAR_DIR


class MediaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Local directory of the files (MEDIA_STORAGE=local) and, with any storage, of uploads
    # being staged.
    media_dir: Path = VAR_DIR / "media"
    # Hard ceiling of one multipart upload; each use (a procedure's document) may set a lower one.
    media_max_upload_bytes: int = 20 * 1024 * 1024

    # A decompression bomb is refused from its header, before any pixel is decoded.
    media_max_image_pixels: int = 50_000_000
    # Above this many pixels a photo must not decode to more than this many times its file size
    # (3 bytes a pixel): a real photo compresses about 10:1, a flat bomb 1000:1.
    media_ratio_check_min_pixels: int = 4_000_000
    # The most times its file size a large photo may decode to (see the setting above).
    media_max_compression_ratio: float = 200
    # Longest video accepted, in seconds: the declared duration, and measured on the decoded
    # frames' timestamps.
    media_max_video_seconds: float = 300
    # A video is judged on what decoding it costs, not only on its declared duration: a frame
    # rate of 60,000 fps makes a tiny duration of a huge number of frames.
    media_max_video_fps: float = 240  # phones film slow motion at 240
    media_max_video_frames: int = 18_000  # 5 minutes at 60 fps
    # Largest video frame in pixels (default 4K UHD).
    media_max_video_frame_pixels: int = 3840 * 2160
    # Public versions: long sides of the thumbnails (named `w320`, `w1280`).
    media_thumbnail_sizes: tuple[int, int] = (320, 1280)
    # Long side (pixels) of the copy that face and plate detection runs on.
    media_detect_max_side: int = 640
    # JPEG quality (1-100) of the public versions and thumbnails.
    media_jpeg_quality: int = 85

    # tus resumable uploads: the largest upload.
    media_tus_max_size_bytes: int = 500 * 1024 * 1024
    # An unfinished tus upload expires (and is deleted) this many hours after its creation.
    media_tus_expiration_hours: int = 24
    # Bytes an account may hold in kept files and unfinished uploads together, however they came
    # in (multipart or tus). MEDIA_TUS_QUOTA_BYTES is its former name.
    media_quota_bytes: int = Field(
        default=2 * 1024 * 1024 * 1024,
        validation_alias=AliasChoices("media_quota_bytes", "media_tus_quota_bytes"),
    )
    # Upload attempts an account may start per hour (multipart and tus creations together).
    media_uploads_per_hour: int = 120
    # An upload no report or dossier took within this time is deleted (and its bytes given back).
    media_orphan_retention_hours: int = 7 * 24
    # A PATCH whose body stops arriving for this long ends as if cut off: what arrived is kept
    # and the upload's writer lock is let go (a phone that vanished without closing the
    # connection would otherwise hold it until the kernel gives up on the socket). tusd: 60 s.
    media_tus_idle_timeout_seconds: float = 60

    # Signed, expiring media URLs.
    media_url_ttl_seconds: int = 3600

    # Where files are kept: the local disk under MEDIA_DIR, or S3-compatible storage.
    media_storage: Literal["local", "s3"] = "local"
    # S3-compatible storage's endpoint (MinIO, a provider's); empty: AWS's own for the region.
    media_s3_endpoint_url: str = ""
    # The bucket holding every file.
    media_s3_bucket: str = "cthainguyen-media"
    # The bucket's region.
    media_s3_region: str = "ap-southeast-1"
    # Access key; empty: the SDK's usual sources (environment, instance role).
    media_s3_access_key_id: str = ""
    # Its secret; empty: the SDK's usual sources.
    media_s3_secret_access_key: str = ""


@lru_cache
def get_media_settings() -> MediaSettings:
    return MediaSettings()
