"""What the worker made of a photo or video: its probe and its public (blurred) versions."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import id_field, utc_field


class MediaProcessing(SQLModel, table=True):
    __tablename__ = "media_processing"

    media_id: uuid.UUID = Field(foreign_key="media_objects.id", primary_key=True,
                                ondelete="CASCADE")
    status: str = Field(default="pending", max_length=16)  # pending | ready | failed
    kind: str = Field(max_length=8)  # photo | video
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    fps: float | None = None
    frames: int | None = None
    faces: int = 0
    plates: int = 0
    error_code: str | None = Field(default=None, max_length=64)
    requested_at: datetime = utc_field(default_now=True)
    processed_at: datetime | None = utc_field(nullable=True)


class MediaVariant(SQLModel, table=True):
    """A derived file: `w320`/`w1280` (blurred photo or poster frame), `video` (blurred video)."""

    __tablename__ = "media_variants"
    __table_args__ = (sa.UniqueConstraint("media_id", "name", name="uq_media_variants_name"),)

    id: uuid.UUID = id_field()
    media_id: uuid.UUID = Field(foreign_key="media_objects.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=16)
    content_type: str = Field(max_length=100)
    storage_key: str = Field(max_length=300)
    width: int
    height: int
    size_bytes: int
    created_at: datetime = utc_field(default_now=True)
