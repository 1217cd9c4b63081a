from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.core import clock
from app.core.db import session_factory
from app.core.jobs import DONE, PENDING, Job, Worker, load_job_modules, schedule_periodic
from app.identity.models import OtpChallenge
from tests.support.flows import request_code, run_jobs


async def test_periodic_jobs_are_scheduled_once_per_slot_however_many_workers(db):
    load_job_modules()
    first, second = {}, {}

    await schedule_periodic(session_factory(), first)
    await schedule_periodic(session_factory(), second)  # another worker, same slot

    kinds = (await db.execute(sa.select(Job.kind).where(Job.kind.like("%purge%")))).scalars()
    kinds = sorted(kinds)
    assert kinds == sorted(set(kinds))
    assert "maintenance.purge_jobs" in kinds and "identity.purge_otp_challenges" in kinds

    clock.advance(timedelta(hours=1))
    await schedule_periodic(session_factory(), first)
    count = (
        await db.execute(sa.select(sa.func.count()).where(Job.kind == "maintenance.purge_jobs"))
    ).scalar_one()
    assert count == 2


async def test_old_finished_jobs_are_purged_and_recent_or_pending_ones_kept(db):
    load_job_modules()
    now = clock.now()
    old_done = Job(
        kind="x", payload={"to": "+84912345678"}, status=DONE, finished_at=now - timedelta(days=8)
    )
    recent_done = Job(kind="x", payload={}, status=DONE, finished_at=now - timedelta(days=1))
    pending = Job(kind="x", payload={}, status=PENDING, run_after=now + timedelta(days=30))
    db.add_all([old_done, recent_done, pending])
    await db.commit()

    await schedule_periodic(session_factory(), {})
    worker = Worker(session_factory(), name="maintenance-test")
    while await worker.run_once():
        pass

    remaining = set((await db.execute(sa.select(Job.id))).scalars())
    assert old_done.id not in remaining
    assert {recent_done.id, pending.id} <= remaining


async def test_expired_sms_codes_are_purged_after_a_day(client, sms_log, db):
    await request_code(client, "0912900001")
    clock.advance(timedelta(days=1, minutes=10))

    await schedule_periodic(session_factory(), {})
    await run_jobs()

    assert (await db.execute(sa.select(OtpChallenge))).first() is None
