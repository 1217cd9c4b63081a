"""Request and response bodies of the incidents API (never the tables themselves)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

CategoryCode = Literal[
    "accident",
    "traffic_jam",
    "flooding",
    "broken_traffic_light",
    "damaged_road",
    "illegal_parking",
    "traffic_violation",
    "fire",
]
Status = Literal[
    "new",
    "verified",
    "in_progress",
    "resolved",
    "rejected_spam",
    "rejected_duplicate",
]
Action = Literal["verify", "reject_spam", "reject_duplicate", "start", "resolve", "note"]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class IncidentCreate(Body):
    category: CategoryCode = Field(examples=["flooding"])
    lat: float = Field(ge=-90, le=90, examples=[21.5935])
    lon: float = Field(ge=-180, le=180, examples=[105.8450])
    address: str | None = Field(
        default=None, max_length=300, examples=["Đường Hoàng Văn Thụ, gần chợ Thái"]
    )
    description: str | None = Field(
        default=None, max_length=2000, examples=["Nước ngập sâu khoảng 30 cm, xe máy chết máy"]
    )
    media_ids: list[uuid.UUID] = Field(
        default_factory=list, max_length=50, description="Photos/videos uploaded by the caller"
    )
    anonymous: bool = Field(default=False, description="Hide the reporter's name from the public")
    confirm_new: bool = Field(
        default=False,
        description="File a new report even though a similar open one is nearby "
        "(after the 409 `incident.possible_duplicate` offered it)",
    )


class DuplicateCandidate(BaseModel):
    id: uuid.UUID
    category: str
    status: str
    distance_m: float
    address: str | None
    me_too_count: int
    created_at: datetime


class MediaOut(BaseModel):
    id: uuid.UUID
    kind: Literal["photo", "video"] | None = None
    visibility: Literal["public", "hidden", "redacted"] = "public"
    ready: bool = Field(description="Processed: the blurred public versions exist")
    processing: Literal["pending", "ready", "failed"] | None = None
    error_code: str | None = Field(default=None, description="Why processing refused the file")
    url: str | None = Field(
        default=None,
        description="Signed, expiring URL of the version "
        "the caller may see (blurred for the public)",
    )
    thumbnail_url: str | None = None
    poster_url: str | None = None
    duration_s: float | None = None
    width: int | None = None
    height: int | None = None


class EventOut(BaseModel):
    at: datetime
    action: str
    from_status: str | None
    to_status: str | None
    public_note: str | None


class IncidentOut(BaseModel):
    id: uuid.UUID
    category: str
    status: Status
    lat: float
    lon: float
    address: str | None
    description: str | None
    ward_code: str | None
    source: str
    anonymous: bool
    reporter: str | None = Field(
        description="Masked name of the reporter; null when anonymous", examples=["Nguyễn Văn A."]
    )
    me_too_count: int
    created_at: datetime
    updated_at: datetime
    verified_at: datetime | None
    resolved_at: datetime | None
    distance_m: float | None = None
    media: list[MediaOut] = Field(default_factory=list)
    timeline: list[EventOut] = Field(default_factory=list)


class StaffIncidentOut(IncidentOut):
    reporter_id: uuid.UUID | None
    camera_id: str | None
    confidence: float | None
    duplicate_of_id: uuid.UUID | None


class MyIncidentOut(IncidentOut):
    relation: Literal["reporter", "subscriber"]


class _Page(BaseModel):
    next_cursor: str | None = Field(default=None, description="Pass back as `cursor` for more")


class IncidentPage(_Page):
    items: list[IncidentOut]


class StaffIncidentPage(_Page):
    items: list[StaffIncidentOut]


class MyIncidentPage(_Page):
    items: list[MyIncidentOut]


class MeTooIn(Body):
    pass


class MeTooOut(BaseModel):
    incident_id: uuid.UUID
    me_too_count: int
    subscribed: bool


class TransitionIn(Body):
    action: Action = Field(examples=["verify"])
    note: str | None = Field(
        default=None, max_length=2000, description="Public note shown on the incident's timeline"
    )
    duplicate_of: uuid.UUID | None = Field(
        default=None, description="The original incident, for `reject_duplicate`"
    )


class MediaModerationIn(Body):
    action: Literal["hide", "show", "redact"] = Field(
        description="hide: not shown to the public (reversible); redact: public versions removed "
        "for good (the original stays for staff)"
    )
    note: str | None = Field(default=None, max_length=500)
