"""Warnings to citizens near a serious alert, from the coarse positions their devices report."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras import integrations
from app.cameras.models import Camera, CameraAlert, DevicePosition
from app.core import clock, personal_data
from app.core.db import session_factory
from app.core.jobs import Job, schedule_periodic
from app.incidents.models import Incident
from app.notifications import service as notifications
from app.notifications.models import Notification
from tests.cameras.support import LAT, LON, alert_body, make_camera, send
from tests.notifications.contracts import assert_valid_push
from tests.notifications.helpers import Account, account
from tests.support.flows import run_jobs
from tests.support.statements import statements


async def citizen_near(
    client: httpx.AsyncClient,
    db: AsyncSession,
    phone: str,
    lat: float,
    lon: float,
    token: str | None = None,
) -> Account:
    citizen = await account(client, db, phone)
    token = token or f"token-{phone}"
    await notifications.register_device(
        db,
        user_id=citizen.id,
        auth_session_id=None,
        token=token,
        platform="android",
        app_version="1.0",
        locale="vi",
    )
    await db.commit()
    response = await client.put(
        f"/api/v1/devices/{token}/location", json={"lat": lat, "lon": lon}, headers=citizen.headers
    )
    assert response.status_code == 200, response.text
    return citizen


async def warned(db: AsyncSession) -> list:
    rows = await db.execute(
        sa.select(Notification.user_id).where(Notification.kind == "traffic.warning")
    )
    return list(rows.scalars())


async def test_a_device_reports_only_a_coarse_cell_and_keeps_no_history(
    client: httpx.AsyncClient, db: AsyncSession, wards: None
) -> None:
    citizen = await citizen_near(client, db, "0913000001", LAT, LON, token="tok-1")
    again = await client.put(
        "/api/v1/devices/tok-1/location",
        json={"lat": 21.5611, "lon": 105.8333},
        headers=citizen.headers,
    )
    assert again.status_code == 200
    assert again.json()["cell"] == "2156:10583"
    rows = (await db.execute(sa.select(DevicePosition))).scalars().all()
    assert [(r.token, r.cell) for r in rows] == [("tok-1", "2156:10583")]
    exported = await personal_data.export_all(db, citizen.id)
    assert exported["device_positions"][0]["cell"] == "2156:10583"
    gone = await client.delete("/api/v1/devices/tok-1/location", headers=citizen.headers)
    assert gone.status_code == 204
    assert (await db.execute(sa.select(DevicePosition))).first() is None


async def test_a_device_with_the_longest_push_token_allowed_reports_its_position(
    client: httpx.AsyncClient, db: AsyncSession, wards: None
) -> None:
    longest = "f" * 1024  # app.notifications registers tokens this long
    await citizen_near(client, db, "0913000009", LAT, LON, token=longest)
    rows = (await db.execute(sa.select(DevicePosition))).scalars().all()
    assert [r.token for r in rows] == [longest]


async def test_positions_only_for_own_devices_and_with_traffic_alerts_on(
    client: httpx.AsyncClient, db: AsyncSession, wards: None
) -> None:
    owner = await citizen_near(client, db, "0913000002", LAT, LON, token="tok-own")
    stranger = await account(client, db, "0913000003")
    theirs = await client.put(
        "/api/v1/devices/tok-own/location", json={"lat": LAT, "lon": LON}, headers=stranger.headers
    )
    assert theirs.status_code == 404
    assert theirs.json()["code"] == "device_position.device_not_found"
    await notifications.set_preferences(
        db, owner.id, categories={"traffic_alerts": False}, quiet_hours=None, language=None
    )
    await db.commit()
    opted_out = await client.put(
        "/api/v1/devices/tok-own/location", json={"lat": LAT, "lon": LON}, headers=owner.headers
    )
    assert opted_out.status_code == 409
    assert opted_out.json()["code"] == "device_position.not_opted_in"
    # Opting out also dropped the position kept before.
    assert (await db.execute(sa.select(DevicePosition))).first() is None
    bad = await client.put(
        "/api/v1/devices/tok-own/location", json={"lat": 100, "lon": LON}, headers=owner.headers
    )
    assert bad.status_code == 422


async def test_an_accident_warns_citizens_nearby_once_per_place_and_interval(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession, push_log
) -> None:
    await make_camera(db)
    near = await citizen_near(client, db, "0913000010", LAT + 0.004, LON - 0.003)
    next_cell = await citizen_near(client, db, "0913000011", LAT + 0.012, LON)
    far = await citizen_near(client, db, "0913000012", 21.5610, 105.8330)  # ~4 km away
    muted = await citizen_near(client, db, "0913000013", LAT, LON)
    await notifications.set_preferences(
        db, muted.id, categories={"traffic_alerts": False}, quiet_hours=None, language=None
    )
    await db.commit()

    assert (await send(ioc, alert_body(confidence=0.93))).status_code == 202
    await run_jobs()
    assert sorted(map(str, await warned(db))) == sorted([str(near.id), str(next_cell.id)])
    assert far.id not in await warned(db)
    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    assert alert.citizens_warned == 2
    kinds = [
        assert_valid_push(json.loads(line)["message"]) for line in push_log.read_text().splitlines()
    ]
    assert kinds.count("traffic.warning") == 2

    # The same place again within the interval: no new warning, never a storm.
    clock.advance(timedelta(minutes=10))
    assert (await send(ioc, alert_body(confidence=0.99))).status_code == 202
    await run_jobs()
    assert len(await warned(db)) == 2
    # Once the interval is over, a new alert there warns again.
    clock.advance(timedelta(minutes=25))
    assert (await send(ioc, alert_body(confidence=0.99))).status_code == 202
    await run_jobs()
    assert len(await warned(db)) == 4


async def test_warning_many_citizens_costs_the_statements_of_warning_two(
    client: httpx.AsyncClient, db: AsyncSession, wards: None
) -> None:
    """A crowded place must not cost a query per citizen (there were two each)."""
    elsewhere = (21.5610, 105.8330)  # ~4 km away: another place, another interval
    for i in range(2):
        await citizen_near(client, db, f"09130002{i:02d}", LAT, LON)
    crowd = [await citizen_near(client, db, f"09130003{i:02d}", *elsewhere) for i in range(12)]
    await notifications.set_preferences(
        db, crowd[0].id, categories={"traffic_alerts": False}, quiet_hours=None, language=None
    )
    await db.commit()

    costs = []
    for lat, lon in ((LAT, LON), elsewhere):
        camera = Camera(code=f"CAM-{lat}", name="Ngã tư", lat=lat, lon=lon, ward_code="TNG-PDP")
        alert = CameraAlert(id=uuid.uuid4(), type="accident", confidence=0.95)
        with statements() as seen:
            warned = await integrations.warn_nearby_citizens(
                db, alert=alert, camera=camera, incident_id=uuid.uuid4()
            )
        costs.append((warned, len(seen)))

    assert [warned for warned, _ in costs] == [2, 11]
    assert costs[0][1] == costs[1][1], costs


async def test_a_crowd_is_warned_in_batches_each_citizen_once(
    ioc: httpx.AsyncClient,
    client: httpx.AsyncClient,
    db: AsyncSession,
    push_log,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(integrations, "WARNING_BATCH", 2)
    await make_camera(db)
    crowd = [await citizen_near(client, db, f"09130004{i:02d}", LAT, LON) for i in range(5)]

    assert (await send(ioc, alert_body(confidence=0.95))).status_code == 202
    await run_jobs()

    jobs = (await db.execute(sa.select(Job).where(Job.kind == "traffic.warning"))).scalars()
    assert sorted(len(job.payload["user_ids"]) for job in jobs) == [1, 2, 2]
    assert sorted(map(str, await warned(db))) == sorted(str(person.id) for person in crowd)


async def test_a_fire_opens_a_fire_incident_and_warns_citizens_nearby_once_per_interval(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession, push_log
) -> None:
    await make_camera(db)
    near = await citizen_near(client, db, "0913000040", LAT, LON + 0.002)
    far = await citizen_near(client, db, "0913000041", 21.5610, 105.8330)  # ~4 km away

    assert (await send(ioc, alert_body(type="fire", confidence=0.85))).status_code == 202
    await run_jobs()
    alert = (await db.execute(sa.select(CameraAlert))).scalar_one()
    incident = await db.get(Incident, uuid.UUID(alert.incident_id))
    assert (incident.category, incident.source, incident.status) == ("fire", "camera", "new")
    assert await warned(db) == [near.id]
    assert far.id not in await warned(db)
    kinds = [
        assert_valid_push(json.loads(line)["message"]) for line in push_log.read_text().splitlines()
    ]
    assert kinds.count("traffic.warning") == 1

    # Smoke seen by the same camera soon after joins the fire; the place was warned just now.
    clock.advance(timedelta(minutes=5))
    assert (await send(ioc, alert_body(type="smoke", confidence=0.95))).status_code == 202
    await run_jobs()
    smoke = await db.execute(sa.select(CameraAlert).where(CameraAlert.type == "smoke"))
    smoke_alert = smoke.scalar_one()
    assert (smoke_alert.incident_id, smoke_alert.incident_joined) == (alert.incident_id, True)
    assert await warned(db) == [near.id]
    # A fire there again after the interval warns again.
    clock.advance(timedelta(minutes=31))
    again = alert_body(type="fire", confidence=0.9, occurred_at=clock.now().isoformat())
    assert (await send(ioc, again)).status_code == 202
    await run_jobs()
    assert await warned(db) == [near.id, near.id]


@pytest.mark.parametrize(
    ("kind", "confidence"),
    [
        ("accident", 0.5),
        ("congestion", 0.99),
        ("red_light", 0.99),
        ("fire", 0.6),
        ("smoke", 0.99),  # smoke opens a fire incident but has no warning threshold by default
    ],
)
async def test_minor_or_uncertain_alerts_warn_nobody(
    ioc: httpx.AsyncClient,
    client: httpx.AsyncClient,
    db: AsyncSession,
    kind: str,
    confidence: float,
) -> None:
    await make_camera(db)
    await citizen_near(client, db, "0913000020", LAT, LON)
    assert (await send(ioc, alert_body(type=kind, confidence=confidence))).status_code == 202
    await run_jobs()
    assert await warned(db) == []


async def test_stale_positions_are_not_near_anything(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    await citizen_near(client, db, "0913000030", LAT, LON)
    clock.advance(timedelta(hours=7))
    assert (await send(ioc, alert_body(occurred_at=clock.now().isoformat()))).status_code == 202
    await run_jobs()
    assert await warned(db) == []


async def test_positions_go_once_too_old_to_warn_anyone(
    client: httpx.AsyncClient, db: AsyncSession, wards: None
) -> None:
    """Never a history, and no last place kept for good either: a citizen who stops reporting
    leaves nothing behind once the position could no longer warn them."""
    await citizen_near(client, db, "0913000031", LAT, LON, token="tok-old")
    clock.advance(timedelta(hours=5))
    await citizen_near(client, db, "0913000032", LAT, LON, token="tok-recent")
    await schedule_periodic(session_factory())
    await run_jobs()
    assert sorted((await db.execute(sa.select(DevicePosition.token))).scalars()) == [
        "tok-old",
        "tok-recent",
    ]

    clock.advance(timedelta(hours=2))  # the first is 7 hours old, the second 2
    await schedule_periodic(session_factory())
    await run_jobs()

    assert list((await db.execute(sa.select(DevicePosition.token))).scalars()) == ["tok-recent"]
