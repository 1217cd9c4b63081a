"""The incidents domain's outbox events are understood by the notifications domain: a status
change reaches the reporter and the followers' inboxes with a deep link of the mobile contract."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from app.core.jobs import DEAD, Job
from app.notifications.models import Notification
from tests.incidents.helpers import CENTRE, act, citizen, file_report, staff
from tests.notifications.contracts import deep_link_patterns
from tests.support.flows import run_jobs, seed_wards

LINKS = deep_link_patterns()


async def test_verification_reaches_reporter_and_followers(client, db):
    await seed_wards(db)
    reporter = await citizen(client, db, "0912410001")
    follower = await citizen(client, db, "0912410002")
    officer = await staff(client, db, "0981410001", "TNG-PDP")
    body = await file_report(client, reporter, CENTRE)
    await client.post(f"/api/v1/incidents/{body['id']}/me-too", headers=follower)

    await act(client, officer, body["id"], "verify", note="Đã xác minh")
    await run_jobs()

    assert (await db.execute(sa.select(Job.kind).where(Job.status == DEAD))).first() is None
    for who in (reporter, follower):
        user_id = uuid.UUID((await client.get("/api/v1/me", headers=who)).json()["id"])
        inbox = (
            (await db.execute(sa.select(Notification).where(Notification.user_id == user_id)))
            .scalars()
            .all()
        )
        assert "incident.status_changed" in {n.kind for n in inbox}
        assert f"cthainguyen://incidents/{body['id']}" in {n.deep_link for n in inbox}
        assert all(any(p.match(n.deep_link) for p in LINKS) for n in inbox)
