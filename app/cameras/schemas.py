"""Request and response bodies of the camera registry and the alert webhook."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SNAPSHOT_EXAMPLE = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8U..."


class AlertType(StrEnum):
    ACCIDENT = "accident"
    CONGESTION = "congestion"
    WRONG_WAY = "wrong_way"
    RED_LIGHT = "red_light"
    FLOODING = "flooding"
    FIRE = "fire"
    SMOKE = "smoke"
    CROWD = "crowd"


class BoundingBox(BaseModel):
    """A region of the snapshot, in fractions of its width and height (0..1, from top left)."""

    model_config = ConfigDict(extra="ignore")

    label: str = Field(
        min_length=1,
        max_length=32,
        examples=["vehicle"],
        description="What the analytics saw there: vehicle, person, face, "
        "plate, fire, water, ... Regions labelled face or plate are always "
        "blurred in public pictures.",
    )
    x: float = Field(ge=0, le=1, examples=[0.42])
    y: float = Field(ge=0, le=1, examples=[0.55])
    width: float = Field(gt=0, le=1, examples=[0.2])
    height: float = Field(gt=0, le=1, examples=[0.18])
    confidence: float | None = Field(default=None, ge=0, le=1, examples=[0.91])


ALERT_EXAMPLE: dict[str, Any] = {
    "event_id": "ioc-2026-11-25-000123",
    "camera_id": "TNG-CAM-0042",
    "type": "accident",
    "confidence": 0.93,
    "occurred_at": "2026-11-25T08:14:03Z",
    "plate_text": "20A-123.45",
    "boxes": [
        {
            "label": "vehicle",
            "x": 0.42,
            "y": 0.55,
            "width": 0.2,
            "height": 0.18,
            "confidence": 0.95,
        },
        {"label": "plate", "x": 0.5, "y": 0.68, "width": 0.05, "height": 0.02},
    ],
    "snapshot": SNAPSHOT_EXAMPLE,
}


class CameraAlertIn(BaseModel):
    """An alert from the city operations centre's video analytics."""

    model_config = ConfigDict(
        extra="ignore",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                ALERT_EXAMPLE,
                {
                    "event_id": "ioc-2026-11-25-000124",
                    "camera_id": "TNG-CAM-0007",
                    "type": "flooding",
                    "confidence": 0.81,
                    "occurred_at": "2026-11-25T08:20:00+07:00",
                },
            ]
        },
    )

    event_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=r"^[\x21-\x7e]+$",
        description="The sender's id of the event (printable ASCII).",
    )
    camera_id: str = Field(
        min_length=1, max_length=64, description="The camera's code in the registry."
    )
    type: AlertType
    confidence: float = Field(ge=0, le=1)
    occurred_at: AwareDatetime = Field(description="When the camera saw it (with a time zone).")
    plate_text: str | None = Field(
        default=None, max_length=20, description="Licence plate read by the analytics, if any."
    )
    boxes: list[BoundingBox] = Field(default_factory=list, max_length=100)
    snapshot: str | None = Field(
        default=None,
        max_length=2_000_000,
        description="A JPEG picture, base64. At most CAMERA_SNAPSHOT_MAX_BYTES (default "
        "512 KiB) once decoded and CAMERA_SNAPSHOT_MAX_PIXELS pixels.",
    )


class AlertAccepted(BaseModel):
    """The acknowledgement; the same body again for a redelivered `webhook-id`."""

    alert_id: uuid.UUID
    camera_id: str = Field(examples=["TNG-CAM-0042"])
    event_id: str = Field(examples=["ioc-2026-11-25-000123"])
    status: Literal["accepted"] = "accepted"
    received_at: datetime


class HeartbeatIn(BaseModel):
    """A camera is alive (sent periodically, so that a quiet camera is not taken for offline)."""

    model_config = ConfigDict(
        extra="ignore",
        str_strip_whitespace=True,
        json_schema_extra={"examples": [{"camera_id": "TNG-CAM-0042"}]},
    )

    camera_id: str = Field(min_length=1, max_length=64)


class HeartbeatOut(BaseModel):
    camera_id: str
    status: Literal["active", "offline", "disabled"]
    last_seen_at: datetime | None


# -------------------------------------------------------------- Frigate NVR


class FrigateEventState(BaseModel):
    """One side (`before`/`after`) of a Frigate `frigate/events` message."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(
        min_length=1,
        max_length=100,
        pattern=r"^[\x21-\x7e]+$",
        examples=["1732522443.12345-abcd12"],
    )
    camera: str = Field(min_length=1, max_length=64, examples=["TNG-CAM-0042"])
    label: str = Field(min_length=1, max_length=64, examples=["car"])
    sub_label: str | list[object] | None = None
    top_score: float | None = Field(default=None, ge=0, le=1, examples=[0.87])
    score: float | None = Field(default=None, ge=0, le=1)
    start_time: float = Field(ge=0, le=4_102_444_800, examples=[1732522443.12])
    frame_time: float | None = None
    box: list[float] | None = Field(
        default=None, max_length=4, description="[x1, y1, x2, y2] in detect-resolution pixels"
    )
    region: list[float] | None = None
    current_zones: list[str] = Field(default_factory=list)
    entered_zones: list[str] = Field(default_factory=list)
    false_positive: bool | None = None
    has_snapshot: bool | None = None
    recognized_license_plate: str | None = Field(default=None, max_length=20)


class FrigateEvent(BaseModel):
    """The JSON Frigate publishes on its `frigate/events` MQTT topic, forwarded by a bridge
    (optionally with a base64 JPEG `snapshot` the bridge fetched from Frigate's API)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "type": "new",
                    "before": {
                        "id": "1732522443.12345-abcd12",
                        "camera": "TNG-CAM-0042",
                        "label": "fire",
                        "top_score": 0.84,
                        "start_time": 1732522443.12,
                    },
                    "after": {
                        "id": "1732522443.12345-abcd12",
                        "camera": "TNG-CAM-0042",
                        "label": "fire",
                        "top_score": 0.86,
                        "score": 0.86,
                        "start_time": 1732522443.12,
                        "box": [320, 180, 480, 300],
                        "false_positive": False,
                        "has_snapshot": True,
                    },
                }
            ]
        },
    )

    type: Literal["new", "update", "end"]
    before: FrigateEventState | None = None
    after: FrigateEventState
    snapshot: str | None = Field(default=None, max_length=2_000_000)
    frame_width: int | None = Field(
        default=None,
        gt=0,
        le=20000,
        description="Detect width, to normalise `box` (the bridge "
        "adds it; without it boxes are dropped)",
    )
    frame_height: int | None = Field(default=None, gt=0, le=20000)


class FrigateIgnored(BaseModel):
    """A Frigate message that is acknowledged but is no alert (update, end, false positive)."""

    status: Literal["ignored"] = "ignored"
    reason: str = Field(examples=["not a new event"])


# -------------------------------------------------------------- registry


class CameraCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$", examples=["TNG-CAM-0042"]
    )
    name: str = Field(min_length=1, max_length=200, examples=["Ngã tư Đồng Quang"])
    lat: float = Field(ge=-90, le=90, examples=[21.5942])
    lon: float = Field(ge=-180, le=180, examples=[105.8482])
    ward_code: str = Field(min_length=1, max_length=32, examples=["TNG-PDP"])
    direction: str | None = Field(
        default=None, max_length=64, examples=["hướng Hà Nội / towards Ha Noi"]
    )
    status: Literal["active", "disabled"] = "active"


class CameraUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str | None = Field(default=None, min_length=1, max_length=200)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    ward_code: str | None = Field(default=None, min_length=1, max_length=32)
    direction: str | None = Field(default=None, max_length=64)
    status: Literal["active", "disabled"] | None = None


class CameraOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    code: str = Field(examples=["TNG-CAM-0042"])
    name: str
    lat: float
    lon: float
    ward_code: str
    direction: str | None
    status: Literal["active", "offline", "disabled"]
    last_seen_at: datetime | None
    offline_since: datetime | None
    created_at: datetime


class CameraList(BaseModel):
    items: list[CameraOut]


class AlertOut(BaseModel):
    """An alert as ward staff see it (pictures through the `.../snapshot/{variant}` links)."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    camera_id: uuid.UUID
    event_id: str
    source: str
    type: str
    confidence: float
    occurred_at: datetime
    received_at: datetime
    plate_text: str | None
    status: str
    snapshot_status: str
    faces_blurred: int
    plates_blurred: int
    incident_id: str | None
    processed_at: datetime | None


class AlertList(BaseModel):
    items: list[AlertOut]


class DevicePositionIn(BaseModel):
    """A device's position; only its coarse grid cell is kept (about 1 km), never a history."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90, examples=[21.5942])
    lon: float = Field(ge=-180, le=180, examples=[105.8482])


class DeviceLocationIn(DevicePositionIn):
    """The device's push token travels in the body, never in a URL (URLs end up in logs)."""

    token: str = Field(min_length=1, max_length=1024, examples=["fcm-registration-token"])


class DeviceLocationForget(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=1024, examples=["fcm-registration-token"])


class DevicePositionOut(BaseModel):
    cell: str = Field(examples=["2159:10584"])
    reported_at: datetime
