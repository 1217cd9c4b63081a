"""Stored files, who owns them, what the worker made of them, resumable uploads
in progress (tus 1.0) and the quota counter."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import id_field, json_field, utc_field


class MediaObject(SQLModel, table=True):
    __tablename__ = "media_objects"
    __table_args__ = (
        # The hourly purge of uploads never attached reads only these.
        sa.Index(
            "ix_media_objects_unattached",
            "created_at",
            sqlite_where=sa.text("attached_at IS NULL"),
            postgresql_where=sa.text("attached_at IS NULL"),
        ),
    )

    id: uuid.UUID = id_field()
    # The account that uploaded it; only they may attach it to anything. None: evidence the
    # system itself recorded (a camera alert's picture), attached by the domain that made it.
    owner_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", index=True)
    purpose: str = Field(default="document", max_length=32)
    content_type: str = Field(max_length=100)  # sniffed from the bytes
    size_bytes: int = Field(sa_type=sa.BigInteger)
    sha256: str = Field(max_length=64)
    original_filename: str | None = Field(default=None, max_length=255)
    storage_backend: str = Field(max_length=16)
    storage_key: str = Field(max_length=300)
    # Set when a record the law keeps (a dossier) refers to the file: erasure keeps it then.
    legal_hold: bool = False
    created_at: datetime = utc_field(default_now=True)
    # When a record (a report, a dossier) first took the file; an upload never attached is
    # removed after MEDIA_ORPHAN_RETENTION_HOURS.
    attached_at: datetime | None = utc_field(nullable=True)


class MediaQuotaUsage(SQLModel, table=True):
    """Bytes each account holds in kept files and unfinished uploads: the one counter every way
    in (multipart, tus) reserves from, in one conditional statement (`app.media.quota`)."""

    __tablename__ = "media_quota_usage"

    owner_id: uuid.UUID = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    used_bytes: int = Field(default=0, sa_type=sa.BigInteger)


class MediaProcessing(SQLModel, table=True):
    __tablename__ = "media_processing"

    media_id: uuid.UUID = Field(
        foreign_key="media_objects.id", primary_key=True, ondelete="CASCADE"
    )
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


class TusUpload(SQLModel, table=True):
    """A resumable upload in progress (tus 1.0)."""

    __tablename__ = "tus_uploads"

    id: uuid.UUID = id_field()
    owner_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    length: int
    offset: int = 0
    # Upload-Metadata as sent (decoded): filename, filetype, ...
    meta: dict[str, Any] = json_field()
    created_at: datetime = utc_field(default_now=True)
    expires_at: datetime = utc_field(index=True)
    completed_at: datetime | None = utc_field(nullable=True)
    # The stored file once the upload is complete and accepted.
    media_id: uuid.UUID | None = Field(
        default=None, foreign_key="media_objects.id", ondelete="SET NULL"
    )
