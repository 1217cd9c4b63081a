"""Resumable uploads in progress (tus 1.0)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from app.core.db import id_field, json_field, utc_field


class TusUpload(SQLModel, table=True):
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
    media_id: uuid.UUID | None = Field(default=None, foreign_key="media_objects.id",
                                       ondelete="SET NULL")
