"""Camera registry: the operators' CLI, the city admins' API, ward staff's view, offline flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras import service
from app.cameras.models import Camera
from app.core import clock
from app.core.config import PROJECT_ROOT
from app.core.jobs import Job
from app.notifications.models import Notification
from tests.cameras.support import alert_body, make_camera, send
from tests.notifications.contracts import validator
from tests.notifications.helpers import account
from tests.support.flows import run_jobs

NEW_CAMERA = {
    "code": "TNG-CAM-0100",
    "name": "Ngã tư Đồng Quang",
    "lat": 21.5942,
    "lon": 105.8482,
    "ward_code": "TNG-PDP",
    "direction": "hướng Hà Nội",
}


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=False,
    )


async def test_operator_registers_a_camera_from_the_cli(
    db: AsyncSession, database_url: str, wards: None
) -> None:
    done = cli(
        database_url,
        "cameras",
        "create",
        "--code",
        "TNG-CAM-0007",
        "--name",
        "Cầu Gia Bẩy",
        "--lat",
        "21.6031",
        "--lon",
        "105.8525",
        "--ward",
        "TNG-PDP",
        "--direction",
        "northbound",
        "--format",
        "json",
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["code"] == "TNG-CAM-0007" and out["status"] == "active"
    assert (out["lat"], out["lon"], out["ward_code"]) == (21.6031, 105.8525, "TNG-PDP")
    camera = (await db.execute(sa.select(Camera))).scalar_one()
    assert str(camera.id) == out["id"] and camera.direction == "northbound"

    again = cli(
        database_url,
        "cameras",
        "create",
        "--code",
        "TNG-CAM-0007",
        "--name",
        "x",
        "--lat",
        "21.6",
        "--lon",
        "105.85",
        "--ward",
        "TNG-PDP",
        "--format",
        "json",
    )
    assert again.returncode == 1
    assert json.loads(again.stdout)["error"] == "camera.code_taken"


async def test_city_admin_manages_cameras_and_others_cannot(
    client: httpx.AsyncClient, db: AsyncSession, wards: None
) -> None:
    admin = await account(client, db, "0912000001", "city_admin")
    staff = await account(client, db, "0912000002", "ward_admin", "TNG-PDP")

    created = await client.post("/api/v1/admin/cameras", json=NEW_CAMERA, headers=admin.headers)
    assert created.status_code == 201, created.text
    camera = created.json()
    assert camera["status"] == "active" and camera["last_seen_at"] is None

    twin = await client.post("/api/v1/admin/cameras", json=NEW_CAMERA, headers=admin.headers)
    assert twin.status_code == 409 and twin.json()["code"] == "camera.code_taken"
    nowhere = await client.post(
        "/api/v1/admin/cameras",
        json={**NEW_CAMERA, "code": "X1", "ward_code": "TNG-NOPE"},
        headers=admin.headers,
    )
    assert nowhere.json()["code"] == "admin_units.ward_not_found"
    forbidden = await client.post(
        "/api/v1/admin/cameras", json={**NEW_CAMERA, "code": "X2"}, headers=staff.headers
    )
    assert forbidden.status_code == 403

    moved = await client.patch(
        f"/api/v1/admin/cameras/{camera['id']}",
        json={"ward_code": "TNG-GS", "direction": "southbound"},
        headers=admin.headers,
    )
    assert moved.status_code == 200
    assert (moved.json()["ward_code"], moved.json()["direction"]) == ("TNG-GS", "southbound")
    disabled = await client.patch(
        f"/api/v1/admin/cameras/{camera['id']}", json={"status": "disabled"}, headers=admin.headers
    )
    assert disabled.json()["status"] == "disabled"
    listed = await client.get("/api/v1/admin/cameras?status=disabled", headers=admin.headers)
    assert [c["code"] for c in listed.json()["items"]] == ["TNG-CAM-0100"]
    missing = await client.get(
        f"/api/v1/admin/cameras/{camera['id'][:-4]}0000", headers=admin.headers
    )
    assert missing.status_code == 404 and missing.json()["code"] == "camera.not_found"


async def test_a_camera_must_stand_where_the_city_serves(
    client: httpx.AsyncClient, db: AsyncSession, wards: None
) -> None:
    """Its alerts become incidents for the city's staff: a camera in Hanoi (or at 0,0, a
    typing slip) would open incidents the incidents domain refuses."""
    admin = await account(client, db, "0912000011", "city_admin")
    for lat, lon in ((21.0285, 105.8542), (0.0, 0.0)):
        refused = await client.post(
            "/api/v1/admin/cameras",
            headers=admin.headers,
            json={**NEW_CAMERA, "lat": lat, "lon": lon},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "camera.outside_service_area"

    camera = (
        await client.post("/api/v1/admin/cameras", json=NEW_CAMERA, headers=admin.headers)
    ).json()
    moved = await client.patch(
        f"/api/v1/admin/cameras/{camera['id']}", json={"lat": 21.0285}, headers=admin.headers
    )
    assert moved.status_code == 422 and moved.json()["code"] == "camera.outside_service_area"
    kept = await client.get(f"/api/v1/admin/cameras/{camera['id']}", headers=admin.headers)
    assert (kept.json()["lat"], kept.json()["lon"]) == (NEW_CAMERA["lat"], NEW_CAMERA["lon"])


async def test_ward_staff_see_only_their_wards_cameras(
    client: httpx.AsyncClient, db: AsyncSession, wards: None
) -> None:
    await make_camera(db, "TNG-CAM-A", ward="TNG-PDP")
    await make_camera(db, "TNG-CAM-B", ward="TNG-GS")
    staff = await account(client, db, "0912000003", "ward_staff", "TNG-GS")
    seen = await client.get("/api/v1/staff/cameras", headers=staff.headers)
    assert [c["code"] for c in seen.json()["items"]] == ["TNG-CAM-B"]
    citizen = await account(client, db, "0912000004")
    assert (await client.get("/api/v1/staff/cameras", headers=citizen.headers)).status_code == 403


async def test_a_silent_camera_is_flagged_offline_once_and_its_ward_told(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    staff = await account(ioc, db, "0912000009", "ward_staff", "TNG-PDP")
    await account(ioc, db, "0912000010", "ward_staff", "TNG-GS")  # another ward: not told
    quiet = await make_camera(db, "TNG-CAM-QUIET")
    await make_camera(db, "TNG-CAM-OFF", status="disabled")
    talking = await make_camera(db, "TNG-CAM-TALK")
    clock.advance(timedelta(minutes=14))
    assert (await send(ioc, alert_body("TNG-CAM-TALK", type="congestion"))).status_code == 202
    clock.advance(timedelta(minutes=2))  # quiet: 16 min silent; talking: 2 min

    flagged = await service.run_offline_check(db)
    await db.commit()
    assert [c.code for c in flagged] == ["TNG-CAM-QUIET"]
    await db.refresh(quiet)
    await db.refresh(talking)
    assert quiet.status == "offline" and quiet.offline_since is not None
    assert talking.status == "active"
    notices = (await db.execute(sa.select(Job).where(Job.kind == "camera.offline"))).scalars()
    assert [(j.payload["camera_code"], j.payload["ward_code"]) for j in notices] == [
        ("TNG-CAM-QUIET", "TNG-PDP")
    ]
    # Checked again: already offline, not flagged (nor announced) twice.
    assert await service.run_offline_check(db) == []
    await db.commit()
    await run_jobs()
    told = (
        (await db.execute(sa.select(Notification).where(Notification.kind == "camera.offline")))
        .scalars()
        .all()
    )
    assert [(n.user_id, n.data["camera_code"]) for n in told] == [(staff.id, "TNG-CAM-QUIET")]
    assert told[0].title == "Camera mất tín hiệu" and "TNG-CAM-QUIET" in told[0].body
    validator("camera.offline").validate(told[0].data)
    # It speaks again: back to active.
    assert (await send(ioc, alert_body("TNG-CAM-QUIET", type="congestion"))).status_code == 202
    await db.refresh(quiet)
    assert quiet.status == "active" and quiet.offline_since is None


async def test_the_offline_check_schedules_itself(db: AsyncSession, wards: None) -> None:
    await make_camera(db)
    pending = (
        (await db.execute(sa.select(Job).where(Job.kind == "camera.offline_check"))).scalars().all()
    )
    assert len(pending) == 1 and pending[0].run_after > clock.now()
    await make_camera(db, "TNG-CAM-0043")  # the same slot: still one check
    assert (
        await db.scalar(
            sa.select(sa.func.count()).select_from(Job).where(Job.kind == "camera.offline_check")
        )
        == 1
    )
    clock.advance(timedelta(seconds=301))
    await run_jobs()
    db.expire_all()
    checks = (
        (
            await db.execute(
                sa.select(Job).where(Job.kind == "camera.offline_check").order_by(Job.run_after)
            )
        )
        .scalars()
        .all()
    )
    assert [j.status for j in checks] == ["done", "pending"]
    assert checks[1].run_after > clock.now()


@pytest.mark.parametrize(
    "body",
    [
        {**NEW_CAMERA, "lat": 91},
        {**NEW_CAMERA, "code": "has space"},
        {**NEW_CAMERA, "unexpected": 1},
        {k: v for k, v in NEW_CAMERA.items() if k != "ward_code"},
    ],
)
async def test_bad_camera_bodies_are_refused(
    client: httpx.AsyncClient, db: AsyncSession, wards: None, body: dict
) -> None:
    admin = await account(client, db, "0912000005", "city_admin")
    response = await client.post("/api/v1/admin/cameras", json=body, headers=admin.headers)
    assert response.status_code == 422
    assert response.json()["code"] == "request.validation_failed"
