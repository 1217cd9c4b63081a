"""Frigate NVR `frigate/events` messages, forwarded by a bridge, become the same alerts."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras.models import CameraAlert, CameraSnapshot
from app.incidents.models import Incident
from tests.cameras.support import b64, jpeg, make_camera, send
from tests.support.flows import run_jobs

FRIGATE = "/internal/v1/camera-alerts/frigate"


def event(
    kind: str = "new",
    *,
    label: str = "fire",
    camera: str = "TNG-CAM-0042",
    object_id: str = "1732522443.12345-abcd12",
    **after: Any,
) -> dict[str, Any]:
    """A message as Frigate 0.14 publishes it (trimmed to fields that matter, plus noise)."""
    state = {
        "id": object_id,
        "camera": camera,
        "frame_time": time.time(),
        "snapshot_time": 0,
        "label": label,
        "sub_label": None,
        "top_score": 0.86,
        "false_positive": False,
        "start_time": time.time() - 3,
        "end_time": None,
        "score": 0.84,
        "box": [320, 180, 480, 300],
        "area": 19200,
        "ratio": 1.33,
        "region": [0, 0, 640, 640],
        "stationary": False,
        "motionless_count": 0,
        "position_changes": 2,
        "current_zones": [],
        "entered_zones": [],
        "has_clip": True,
        "has_snapshot": True,
        "attributes": {},
        "current_attributes": [],
    }
    state.update(after)
    return {
        "type": kind,
        "before": dict(state),
        "after": state,
        "frame_width": 640,
        "frame_height": 360,
    }


async def test_a_frigate_fire_event_becomes_an_alert(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    response = await send(ioc, {**event(), "snapshot": b64(jpeg())}, path=FRIGATE)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted"
    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    assert (alert.source, alert.type, alert.confidence) == ("frigate", "fire", 0.86)
    assert alert.event_id == "frigate:1732522443.12345-abcd12"
    assert alert.boxes == [
        {"label": "fire", "x": 0.5, "y": 0.5, "width": 0.25, "height": 1 / 3, "confidence": 0.84}
    ]
    assert await db.get(CameraSnapshot, (alert.id, "original")) is not None


async def test_updates_of_the_same_frigate_object_are_one_alert(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    first = await send(ioc, event("new"), path=FRIGATE)
    update = await send(ioc, event("update", top_score=0.95), path=FRIGATE)
    assert update.status_code == 202 and update.json() == first.json()
    assert await db.scalar(sa.select(sa.func.count()).select_from(CameraAlert)) == 1


async def test_a_zone_named_after_an_alert_type_maps_ordinary_objects(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    response = await send(
        ioc,
        event(label="car", current_zones=["wrong_way"], entered_zones=["wrong_way"]),
        path=FRIGATE,
    )
    assert response.status_code == 202
    await run_jobs()
    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    assert alert.type == "wrong_way" and alert.status == "processed"
    incident = (await db.execute(sa.select(Incident))).scalar_one()
    assert incident.category == "traffic_violation" and str(incident.id) == alert.incident_id


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (event("end"), "ended"),
        (event(label="car"), "maps to no alert type"),
        (event(false_positive=True), "false positive"),
    ],
)
async def test_frigate_messages_that_are_no_alert_are_acknowledged_and_ignored(
    ioc: httpx.AsyncClient, db: AsyncSession, message: dict[str, Any], reason: str
) -> None:
    await make_camera(db)
    response = await send(ioc, message, path=FRIGATE)
    assert response.status_code == 202
    assert response.json()["status"] == "ignored" and reason in response.json()["reason"]
    assert await db.scalar(sa.select(sa.func.count()).select_from(CameraAlert)) == 0


async def test_frigate_events_are_signed_and_checked_like_any_alert(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    unsigned = await ioc.post(FRIGATE, json=event())
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "camera_alert.unsigned"
    unknown = await send(ioc, event(camera="front_door"), path=FRIGATE)
    assert unknown.status_code == 422
    assert unknown.json()["code"] == "camera_alert.unknown_camera"
    nonsense = await send(ioc, {**event(), "after": {"id": "x"}}, path=FRIGATE)
    assert nonsense.status_code == 422
    assert nonsense.json()["code"] == "request.validation_failed"
    bad_time = await send(ioc, event(start_time=1e300), path=FRIGATE)
    assert bad_time.status_code == 422
