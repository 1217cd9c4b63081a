from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class MediaOut(BaseModel):
    id: uuid.UUID
    content_type: str = Field(examples=["application/pdf"], description="Detected from the bytes")
    size_bytes: int = Field(examples=[183204])
    sha256: str = Field(
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"]
    )
    original_filename: str | None = Field(default=None, examples=["giay-chung-sinh.pdf"])
    purpose: str = Field(examples=["document"])
    created_at: datetime
