"""Devices, the inbox (one row per recipient), per-device delivery status, preferences and
announcements."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.core.db import id_field, json_field, utc_field


class Device(SQLModel, table=True):
    """A push token of one app install. A token belongs to one account at a time."""

    __tablename__ = "push_devices"

    id: uuid.UUID = id_field()
    token: str = Field(max_length=1024, unique=True)
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    # The sign-in session that registered it: logging that session out removes the token.
    auth_session_id: uuid.UUID | None = Field(default=None, index=True)
    platform: str = Field(max_length=16)  # android | ios | web
    app_version: str | None = Field(default=None, max_length=32)
    locale: str | None = Field(default=None, max_length=16)
    created_at: datetime = utc_field(default_now=True)
    last_seen_at: datetime = utc_field(default_now=True)


class Notification(SQLModel, table=True):
    """The inbox: every notification as its recipient saw it, whether or not a push arrived."""

    __tablename__ = "notifications"
    __table_args__ = (
        sa.Index("ix_notifications_user_id_id", "user_id", "id"),
        sa.Index("ix_notifications_user_unread", "user_id", "read_at"),
        # A producer's event delivered twice (job retried) gives one inbox row. Partial: the
        # rows without a key (announcements, one per recipient by the next index) cost the
        # fan-out no entry here.
        sa.Index(
            "uq_notifications_user_dedupe",
            "user_id",
            "dedupe_key",
            unique=True,
            postgresql_where=sa.text("dedupe_key IS NOT NULL"),
            sqlite_where=sa.text("dedupe_key IS NOT NULL"),
        ),
        # One inbox row per recipient of an announcement; its reports and a batch's check for
        # recipients told already read it by range.
        sa.Index("uq_notifications_announcement_user", "announcement_id", "user_id", unique=True),
    )

    id: uuid.UUID = id_field()
    user_id: uuid.UUID = Field(foreign_key="users.id", ondelete="CASCADE")
    kind: str = Field(max_length=64)
    category: str = Field(max_length=32)
    urgent: bool = False
    language: str = Field(default="vi", max_length=8)
    title: str = Field(max_length=300)
    body: str = Field(max_length=2000)
    deep_link: str = Field(max_length=500)
    # FCM data map (strings only) exactly as pushed.
    data: dict[str, Any] = json_field()
    collapse_key: str | None = Field(default=None, max_length=100)
    ttl_seconds: int = 86400
    announcement_id: uuid.UUID | None = None
    dedupe_key: str | None = Field(default=None, max_length=200)
    # pending -> sent (handed to the push backend) | held (quiet hours) | muted (category off)
    push_state: str = Field(default="pending", max_length=16)
    created_at: datetime = utc_field(default_now=True)
    read_at: datetime | None = utc_field(nullable=True)


@dataclass(eq=False)
class NewNotification:
    """An inbox row about to be written in bulk (a Core INSERT): the same fields as
    `Notification`, without an ORM object per recipient (a ward announcement makes 100,000)."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: str
    category: str
    urgent: bool
    language: str
    title: str
    body: str
    deep_link: str
    data: dict[str, Any]
    collapse_key: str | None
    ttl_seconds: int
    announcement_id: uuid.UUID | None
    dedupe_key: str | None
    push_state: str
    created_at: datetime
    read_at: datetime | None = None


class Delivery(SQLModel, table=True):
    """One push of one notification to one device, with FCM's answer."""

    __tablename__ = "push_deliveries"
    id: uuid.UUID = id_field()
    notification_id: uuid.UUID = Field(
        foreign_key="notifications.id", ondelete="CASCADE", index=True
    )
    # No foreign key: the delivery record outlives a device removed for UNREGISTERED. No index
    # either (nor on status): retries name their delivery rows; only the fan-out writes here.
    device_id: uuid.UUID
    platform: str = Field(max_length=16)
    # sent | retrying | failed | unregistered | invalid | cancelled
    status: str = Field(max_length=16)
    attempts: int = 1
    message_id: str | None = Field(default=None, max_length=300)
    error_code: str | None = Field(default=None, max_length=64)
    error_message: str | None = Field(default=None, max_length=500)
    created_at: datetime = utc_field(default_now=True)
    updated_at: datetime = utc_field(default_now=True)
    next_attempt_at: datetime | None = utc_field(nullable=True)


class NotificationPreference(SQLModel, table=True):
    __tablename__ = "notification_preferences"

    user_id: uuid.UUID = Field(primary_key=True, foreign_key="users.id", ondelete="CASCADE")
    # category -> enabled; a category missing here is on.
    categories: dict[str, Any] = json_field()
    quiet_start: str | None = Field(default=None, max_length=5)  # "22:00", Asia/Ho_Chi_Minh
    quiet_end: str | None = Field(default=None, max_length=5)
    language: str | None = Field(default=None, max_length=8)
    updated_at: datetime = utc_field(default_now=True)


class Announcement(SQLModel, table=True):
    __tablename__ = "announcements"

    id: uuid.UUID = id_field()
    author_id: uuid.UUID | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    scope: str = Field(max_length=8)  # ward | city
    ward_code: str | None = Field(default=None, max_length=32, index=True)
    title_vi: str = Field(max_length=200)
    body_vi: str = Field(max_length=1000)
    title_en: str | None = Field(default=None, max_length=200)
    body_en: str | None = Field(default=None, max_length=1000)
    urgent: bool = False
    # scheduled -> sending -> sent ; scheduled -> cancelled
    status: str = Field(default="scheduled", max_length=16)
    scheduled_at: datetime = utc_field()
    created_at: datetime = utc_field(default_now=True)
    started_at: datetime | None = utc_field(nullable=True)
    recipients: int = 0
    batches_total: int = 0
    batches_done: int = 0
