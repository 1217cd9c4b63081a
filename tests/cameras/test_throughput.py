"""What the acknowledgement and the worker do under a burst: every alert acknowledged and stored
once, concurrent redeliveries answered alike, a claimed batch processed concurrently and each
alert exactly once."""

from __future__ import annotations

import asyncio
import json

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras import service
from app.cameras.models import CameraAlert, CameraSnapshot
from app.core.db import session_factory
from app.core.jobs import Job, Worker, load_job_modules
from app.incidents.models import IncidentEvent, IncidentMedia
from tests.cameras.support import alert_body, b64, jpeg, make_camera, send
from tests.conftest import count

PLATE = {"label": "plate", "x": 0.5, "y": 0.6, "width": 0.2, "height": 0.1}


async def test_a_burst_of_concurrent_alerts_is_acknowledged_and_stored_once_each(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    picture = b64(jpeg(320, 180))
    bodies = [alert_body(snapshot=picture) for _ in range(24)]
    # Each also redelivered at once under its own webhook-id, racing the first delivery.
    raws = [json.dumps(body).encode() for body in bodies]
    sends = [send(ioc, raw, msg_id=f"msg_burst_{i}") for i, raw in enumerate(raws)]
    sends += [send(ioc, raw, msg_id=f"msg_burst_{i}") for i, raw in enumerate(raws)]
    answers = await asyncio.gather(*sends)
    assert [a.status_code for a in answers] == [202] * 48
    first, again = answers[:24], answers[24:]
    assert [a.json() for a in first] == [a.json() for a in again]
    assert len({a.json()["alert_id"] for a in first}) == 24
    assert await count(db, CameraAlert) == 24
    assert (
        await db.scalar(
            sa.select(sa.func.count()).select_from(Job).where(Job.kind == service.PROCESS_JOB)
        )
        == 24
    )
    originals = await db.scalar(sa.select(sa.func.count()).select_from(CameraSnapshot))
    assert originals == 24


async def test_a_claimed_batch_is_processed_concurrently_and_each_alert_once(
    ioc: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    for seed in range(6):
        body = alert_body(snapshot=b64(jpeg(480, 270, seed=seed)), boxes=[PLATE])
        assert (await send(ioc, body)).status_code == 202
    load_job_modules()
    worker = Worker(session_factory(), name="batch-worker", batch_size=10, concurrency=4)

    assert await worker.run_once() == 6

    alerts = list((await db.execute(sa.select(CameraAlert))).scalars())
    assert {(a.status, a.snapshot_status) for a in alerts} == {("processed", "processed")}
    assert await count(db, IncidentEvent) == 6  # one timeline entry per alert: 1 opened, 5 joined
    assert await count(db, IncidentMedia) == 6
    # Running the jobs' work again changes nothing.
    async with session_factory()() as session, session.begin():
        for alert in alerts:
            await service.process_alert(session, alert.id)
    assert await count(db, IncidentEvent) == 6
