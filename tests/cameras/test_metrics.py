"""What the operations centre's alerts look like on /metrics: alerts by outcome, refusals by
code, and how long processing takes — each processed alert once, whatever its attempts."""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras import service
from app.core import clock
from app.core.jobs import Job
from tests.cameras.support import alert_body, make_camera, send, signed_headers
from tests.support.flows import run_jobs
from tests.support.metrics import sample, scrape

ACCIDENTS = {"source": "ioc", "type": "accident"}
DELAY = "camera_alert_processing_delay_seconds_count"
WAITED = {"kind": "camera.process_alert"}


async def test_alerts_are_counted_by_outcome_and_refusals_by_code(
    ioc: httpx.AsyncClient, client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_camera(db)
    before = await scrape(client)
    body = alert_body()
    assert (await send(ioc, body, msg_id="msg_counted")).status_code == 202
    assert (await send(ioc, body, msg_id="msg_counted")).status_code == 202
    raw = json.dumps(alert_body()).encode()
    tampered = await ioc.post(
        "/internal/v1/camera-alerts",
        headers=signed_headers(raw),
        content=raw.replace(b"0.93", b"0.99"),
    )
    unknown = await send(ioc, alert_body(camera="TNG-CAM-9999"))
    assert (tampered.status_code, unknown.status_code) == (401, 422)

    after = await scrape(client)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("camera_alerts_total", **ACCIDENTS, outcome="accepted") == 1
    assert grew("camera_alerts_total", **ACCIDENTS, outcome="redelivery") == 1
    assert grew("problems_total", code="camera_alert.bad_signature") == 1
    assert grew("problems_total", code="camera_alert.unknown_camera") == 1


async def test_processing_delay_is_observed_once_per_alert_not_per_attempt(
    ioc: httpx.AsyncClient,
    client: httpx.AsyncClient,
    db: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await make_camera(db)
    before = await scrape(client)

    class FailsAtTheEnd:
        """The processing's last step fails: all of it was written, then rolled back."""

        def info(self, event: str, **_: object) -> None:
            raise RuntimeError(f"failed after {event}")

        def warning(self, *_: object, **__: object) -> None: ...

    with monkeypatch.context() as patched:
        patched.setattr(service, "log", FailsAtTheEnd())
        assert (await send(ioc, alert_body())).status_code == 202
        await run_jobs()
    failed = await scrape(client)
    assert sample(failed, DELAY, type="accident") == sample(before, DELAY, type="accident")
    assert sample(failed, "jobs_finished_total", **WAITED, outcome="retry") == (
        sample(before, "jobs_finished_total", **WAITED, outcome="retry") + 1
    )

    await db.execute(
        sa.update(Job).where(Job.kind == WAITED["kind"]).values(run_after=clock.now())
    )  # its retry is due now
    await db.commit()
    await run_jobs()

    after = await scrape(client)
    assert sample(after, DELAY, type="accident") == sample(before, DELAY, type="accident") + 1
    # Both attempts waited in the queue: the wait is per attempt.
    assert sample(after, "job_wait_seconds_count", **WAITED) == (
        sample(before, "job_wait_seconds_count", **WAITED) + 2
    )
