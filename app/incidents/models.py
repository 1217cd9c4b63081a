"""Traffic-incident reports, who follows them, and what happened to them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import id_field, json_field, utc_field

# Written out (not bound parameters), so both databases match it to the partial index.
FEED_PREDICATE = "status IN ('verified', 'in_progress')"
# What every audience sees of an incident (the feed's columns; views add the rest per audience).
PUBLIC_FIELDS = (
    "id",
    "category",
    "status",
    "lat",
    "lon",
    "address",
    "description",
    "ward_code",
    "source",
    "anonymous",
    "me_too_count",
    "created_at",
    "updated_at",
    "verified_at",
    "resolved_at",
)


class Incident(SQLModel, table=True):
    __tablename__ = "incidents"
    __table_args__ = (
        # The nearby feed: only incidents on the road, by grid cell, carrying what the query
        # filters and orders by, so candidates are found and ranked from the index alone.
        sa.Index(
            "ix_incidents_feed",
            "cell",
            "lat",
            "lon",
            "created_at",
            "id",
            "category",
            postgresql_where=sa.text(FEED_PREDICATE),
            sqlite_where=sa.text(FEED_PREDICATE),
        ),
        # Duplicate look-up: same category, nearby cells, open.
        sa.Index("ix_incidents_category_cell", "category", "cell"),
        # Staff queue of a ward, newest first.
        sa.Index("ix_incidents_ward_created", "ward_code", "created_at"),
        sa.Index("ix_incidents_reporter_created", "reporter_id", "created_at"),
        # A report retried over a flaky network (same Idempotency-Key) is one report.
        sa.UniqueConstraint("reporter_id", "idempotency_key", name="uq_incidents_idempotency"),
    )

    id: uuid.UUID = id_field()
    category: str = Field(max_length=32)
    status: str = Field(default="new", max_length=24)
    lat: float
    lon: float
    cell: int = Field(sa_type=sa.BigInteger)
    address: str | None = Field(default=None, max_length=300)
    description: str | None = Field(default=None, max_length=2000)
    # The ward whose staff handle it; NULL: the province queue (city admins).
    ward_code: str | None = Field(default=None, max_length=32)
    reporter_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    # Masked name shown to the public unless anonymous ("Nguyễn Văn A.").
    reporter_display_name: str | None = Field(default=None, max_length=200)
    anonymous: bool = False
    source: str = Field(default="citizen", max_length=16)  # citizen | camera | open311
    camera_id: str | None = Field(default=None, max_length=100)
    confidence: float | None = None
    me_too_count: int = 0
    idempotency_key: str | None = Field(default=None, max_length=100)
    duplicate_of_id: uuid.UUID | None = Field(default=None)
    occurred_at: datetime = utc_field(default_now=True)
    created_at: datetime = utc_field(default_now=True)
    updated_at: datetime = utc_field(default_now=True)
    # The latest report or "me too": duplicates are matched against it.
    last_reported_at: datetime = utc_field(default_now=True)
    verified_at: datetime | None = utc_field(nullable=True)
    resolved_at: datetime | None = utc_field(nullable=True)


class IncidentSubscription(SQLModel, table=True):
    """Who hears about status changes: the reporter and everyone who said "me too"."""

    __tablename__ = "incident_subscriptions"

    incident_id: uuid.UUID = Field(foreign_key="incidents.id", primary_key=True, ondelete="CASCADE")
    user_id: uuid.UUID = Field(
        foreign_key="users.id", primary_key=True, ondelete="CASCADE", index=True
    )
    via: str = Field(max_length=16)  # reporter | me_too | duplicate
    created_at: datetime = utc_field(default_now=True)


class IncidentEvent(SQLModel, table=True):
    """The timeline: reports, status changes, notes, media moderation."""

    __tablename__ = "incident_events"
    __table_args__ = (sa.Index("ix_incident_events_incident_at", "incident_id", "at"),)

    id: uuid.UUID = id_field()
    incident_id: uuid.UUID = Field(foreign_key="incidents.id", ondelete="CASCADE")
    at: datetime = utc_field(default_now=True)
    actor_id: uuid.UUID | None = Field(default=None)
    action: str = Field(max_length=32)
    from_status: str | None = Field(default=None, max_length=24)
    to_status: str | None = Field(default=None, max_length=24)
    public_note: str | None = Field(default=None, max_length=2000)
    details: dict[str, Any] = json_field()


class IncidentMedia(SQLModel, table=True):
    """A photo or video of the report. The public only ever sees its blurred versions, and only
    while `visibility` is public."""

    __tablename__ = "incident_media"

    incident_id: uuid.UUID = Field(foreign_key="incidents.id", primary_key=True, ondelete="CASCADE")
    # A file belongs to one report.
    media_id: uuid.UUID = Field(
        foreign_key="media_objects.id", primary_key=True, ondelete="CASCADE", unique=True
    )
    position: int = 0
    visibility: str = Field(default="public", max_length=16)  # public | hidden | redacted
    added_by_id: uuid.UUID | None = Field(default=None)
    created_at: datetime = utc_field(default_now=True)
