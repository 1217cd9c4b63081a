"""Request and response bodies of the notifications API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Platform = Literal["android", "ios", "web"]


class DeviceIn(BaseModel):
    token: str = Field(min_length=1, max_length=1024, examples=["fcm-registration-token"])
    platform: Platform
    app_version: str | None = Field(default=None, max_length=32, examples=["2.3.0"])
    locale: str | None = Field(default=None, max_length=16, examples=["vi-VN"])


class DeviceTokenIn(BaseModel):
    """A push token in a request body: tokens never travel in URLs (URLs end up in logs)."""

    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=1024, examples=["fcm-registration-token"])


class DeviceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    token: str
    platform: Platform
    app_version: str | None
    locale: str | None
    created_at: datetime
    last_seen_at: datetime


class DeviceList(BaseModel):
    items: list[DeviceOut]


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str = Field(examples=["dossier.status_changed"])
    category: str = Field(examples=["dossier_updates"])
    title: str
    body: str
    deep_link: str = Field(examples=["cthainguyen://dossiers/0193..."])
    data: dict[str, str]
    urgent: bool
    created_at: datetime
    read_at: datetime | None


class InboxPage(BaseModel):
    items: list[NotificationOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")
    unread_count: int


class ReadAll(BaseModel):
    marked_read: int
    unread_count: int


class QuietHours(BaseModel):
    start: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["22:00"])
    end: str = Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", examples=["06:30"])


class Categories(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dossier_updates: bool = True
    incident_updates: bool = True
    ward_announcements: bool = True
    traffic_alerts: bool = True


class Preferences(BaseModel):
    categories: Categories = Field(default_factory=Categories)
    quiet_hours: QuietHours | None = Field(
        default=None,
        description="Local time (Asia/Ho_Chi_Minh). Non-urgent pushes are held until the end, "
        "never dropped; the inbox gets them at once.",
    )
    language: Literal["vi", "en"] | None = Field(
        default=None, description="Language of notifications; the account's locale if unset."
    )


class PreferencesOut(BaseModel):
    categories: Categories
    quiet_hours: QuietHours | None
    language: Literal["vi", "en"]


# ---------------------------------------------------------------- announcements


class AnnouncementIn(BaseModel):
    scope: Literal["ward", "city"] = "ward"
    ward_code: str | None = Field(
        default=None,
        max_length=32,
        description="Ward of a ward announcement; ward staff default to, and may only use, "
        "their own ward.",
    )
    title_vi: str = Field(min_length=1, max_length=200)
    body_vi: str = Field(min_length=1, max_length=1000)
    title_en: str | None = Field(default=None, min_length=1, max_length=200)
    body_en: str | None = Field(default=None, min_length=1, max_length=1000)
    urgent: bool = Field(default=False, description="Urgent announcements ignore quiet hours.")
    scheduled_at: datetime | None = Field(default=None, description="Send later; now if unset.")


class RenderedText(BaseModel):
    title: str
    body: str


class AnnouncementPreview(BaseModel):
    vi: RenderedText
    en: RenderedText
    recipients: int = Field(description="Citizens who would receive it now.")
    devices: int = Field(description="Their registered devices.")
    push_example: dict[str, object] = Field(
        description="The FCM message an Android device would receive."
    )


class DeliveryReport(BaseModel):
    recipients: int
    devices_targeted: int
    delivered: int
    failed: int
    pending: int
    held_or_muted: int
    opened: int


class AnnouncementOut(BaseModel):
    id: uuid.UUID
    scope: Literal["ward", "city"]
    ward_code: str | None
    title_vi: str
    body_vi: str
    title_en: str | None
    body_en: str | None
    urgent: bool
    status: Literal["scheduled", "sending", "sent", "cancelled"]
    scheduled_at: datetime
    created_at: datetime
    started_at: datetime | None
    report: DeliveryReport


class AnnouncementList(BaseModel):
    items: list[AnnouncementOut]
