"""Camera registry, received alerts, their pictures, and what nearby warnings need."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import id_field, utc_field

ACTIVE, OFFLINE, DISABLED = "active", "offline", "disabled"


class Camera(SQLModel, table=True):
    __tablename__ = "cameras"

    id: uuid.UUID = id_field()
    # The identifier senders use in alerts: the operations centre's camera id, or the camera's
    # name in Frigate.
    code: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=200)
    lat: float
    lon: float
    ward_code: str = Field(foreign_key="admin_units.code", index=True, max_length=32)
    direction: str | None = Field(default=None, max_length=64)
    # active | offline (silent too long; set back to active by its next alert) | disabled
    status: str = Field(default=ACTIVE, max_length=16, index=True)
    last_seen_at: datetime | None = utc_field(nullable=True)
    offline_since: datetime | None = utc_field(nullable=True)
    created_at: datetime = utc_field(default_now=True)
    updated_at: datetime = utc_field(default_now=True)


class CameraAlert(SQLModel, table=True):
    """One accepted alert. `webhook_id` and (camera, event id) make redelivery harmless."""

    __tablename__ = "camera_alerts"
    __table_args__ = (
        sa.UniqueConstraint("camera_id", "event_id", name="uq_camera_alerts_event"),
        sa.Index("ix_camera_alerts_camera_occurred", "camera_id", "occurred_at"),
    )

    id: uuid.UUID = id_field()
    webhook_id: str = Field(max_length=200, unique=True)
    camera_id: uuid.UUID = Field(foreign_key="cameras.id", ondelete="CASCADE")
    event_id: str = Field(max_length=128)
    source: str = Field(default="ioc", max_length=16)  # ioc | frigate
    type: str = Field(max_length=32)
    confidence: float
    occurred_at: datetime = utc_field()
    received_at: datetime = utc_field(default_now=True)
    plate_text: str | None = Field(default=None, max_length=32)
    boxes: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    # queued -> processed
    status: str = Field(default="queued", max_length=16)
    # none | received | processed | corrupt
    snapshot_status: str = Field(default="none", max_length=16)
    faces_blurred: int = 0
    plates_blurred: int = 0
    incident_id: str | None = Field(default=None, max_length=64)
    # The picture as the incident's evidence (app.media, a system file with no owner).
    evidence_media_id: uuid.UUID | None = Field(default=None)
    incident_joined: bool | None = None
    staff_notified: bool = False
    citizens_warned: int = 0
    processed_at: datetime | None = utc_field(nullable=True)
    # The first answer, returned again for a redelivered webhook-id.
    response: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class CameraSnapshot(SQLModel, table=True):
    """Pictures of an alert: `original` (staff only), `public` and `thumbnail` (blurred)."""

    __tablename__ = "camera_snapshots"

    alert_id: uuid.UUID = Field(
        foreign_key="camera_alerts.id", primary_key=True, ondelete="CASCADE"
    )
    variant: str = Field(primary_key=True, max_length=16)
    content: bytes = Field(sa_type=sa.LargeBinary)
    width: int = 0
    height: int = 0
    created_at: datetime = utc_field(default_now=True)


class DevicePosition(SQLModel, table=True):
    """The coarse grid cell a device last reported, only while its owner opted in to traffic
    alerts. One row per device, overwritten: never a history."""

    __tablename__ = "device_positions"

    # A push token, as long as app.notifications lets one be (a longer column refused the
    # position of a registered device with a 500 on PostgreSQL).
    token: str = Field(primary_key=True, max_length=1024)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    cell: str = Field(max_length=32, index=True)
    reported_at: datetime = utc_field(default_now=True)


class WarningSent(SQLModel, table=True):
    """When citizens near a place (grid cell) were last warned: at most once per interval."""

    __tablename__ = "camera_warnings_sent"

    cell: str = Field(primary_key=True, max_length=32)
    last_sent_at: datetime = utc_field()
    last_alert_id: uuid.UUID | None = Field(default=None)
