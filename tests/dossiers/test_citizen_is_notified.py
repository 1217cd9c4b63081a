"""The dossiers domain's outbox events are understood by the notifications domain: each status
change reaches the citizen's inbox with a deep link of the mobile contract."""

from __future__ import annotations

import json
import re
import uuid

import sqlalchemy as sa

from app.core.config import PROJECT_ROOT
from app.core.jobs import DEAD, Job
from app.notifications.models import Notification
from tests.dossiers.test_workflow import act, new_dossier
from tests.support.flows import run_jobs

LINKS = json.loads((PROJECT_ROOT / "mobile_contracts" / "deep_links.json").read_text())["links"]


async def test_a_status_change_lands_in_the_citizens_inbox(client, db, citizen, pdp_staff):
    code = await new_dossier(client, citizen)
    response = await act(client, pdp_staff, code, action="receive")
    assert response.status_code == 200, response.text

    await run_jobs()

    assert (await db.execute(sa.select(Job.kind).where(Job.status == DEAD))).first() is None
    inbox = (await db.execute(sa.select(Notification).where(
        Notification.user_id == uuid.UUID(citizen.id)))).scalars().all()
    assert {n.kind for n in inbox} == {"dossier.status_changed"}
    assert f"cthainguyen://dossiers/{code}" in {n.deep_link for n in inbox}
    assert all(any(re.match(e["regex"], n.deep_link) for e in LINKS) for n in inbox)
