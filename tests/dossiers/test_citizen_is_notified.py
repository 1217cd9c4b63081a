"""The dossiers domain's outbox events are understood by the notifications domain: each status
change reaches the citizen's inbox with a deep link of the mobile contract."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from app.core.jobs import DEAD, Job
from app.notifications.models import Notification
from tests.dossiers.test_workflow import act, new_dossier
from tests.notifications.contracts import deep_link_patterns
from tests.support.flows import run_jobs

LINKS = deep_link_patterns()


async def test_a_status_change_lands_in_the_citizens_inbox(client, db, citizen, pdp_staff):
    code = await new_dossier(client, citizen)
    response = await act(client, pdp_staff, code, action="receive")
    assert response.status_code == 200, response.text

    await run_jobs()

    assert (await db.execute(sa.select(Job.kind).where(Job.status == DEAD))).first() is None
    inbox = (
        (
            await db.execute(
                sa.select(Notification).where(Notification.user_id == uuid.UUID(citizen.id))
            )
        )
        .scalars()
        .all()
    )
    assert {n.kind for n in inbox} == {"dossier.status_changed"}
    assert f"cthainguyen://dossiers/{code}" in {n.deep_link for n in inbox}
    assert all(any(p.match(n.deep_link) for p in LINKS) for n in inbox)
