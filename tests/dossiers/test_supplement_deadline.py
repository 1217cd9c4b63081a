"""A citizen asked for a supplement has DOSSIER_SUPPLEMENT_WAIT_WORKDAYS working days (15 by
default) to provide it; after that a periodic job stops processing and tells the citizen."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import jsonschema
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.db import session_factory
from app.core.jobs import DEAD, PERIODIC, Job, load_job_modules, schedule_periodic
from app.dossiers import service
from app.dossiers.models import Dossier
from app.notifications.models import Notification
from tests.dossiers.test_workflow import act, new_dossier
from tests.support.dossiers import Person, travel_to, upload_pdf
from tests.support.flows import run_jobs

PAYLOAD_SCHEMA = (
    Path(__file__).resolve().parents[2]
    / "mobile_contracts"
    / "jobs"
    / "dossier.status_changed.schema.json"
)


async def asked_for_a_supplement(
    client: httpx.AsyncClient, citizen: Person, staff: Person, when: datetime
) -> str:
    await travel_to(client, when, citizen, staff)
    code = await new_dossier(client, citizen)
    assert (await act(client, staff, code, action="receive")).status_code == 200
    asked = await act(
        client, staff, code, action="request_supplement", note="Thiếu bản chụp rõ giấy chứng sinh"
    )
    assert asked.status_code == 200, asked.text
    return code


async def stop_job_runs(db: AsyncSession) -> None:
    """As the worker does it: schedule the periodic slot, then run what is due."""
    load_job_modules()
    await schedule_periodic(session_factory(), {})
    await run_jobs()
    db.expire_all()


async def status_jobs(db: AsyncSession) -> list[dict[str, object]]:
    rows = (
        (
            await db.execute(
                sa.select(Job.payload)
                .where(Job.kind == "dossier.status_changed")
                .order_by(Job.created_at)
            )
        )
        .scalars()
        .all()
    )
    return list(rows)


async def test_processing_stops_when_the_supplement_is_not_provided_in_time_across_tet(
    client: httpx.AsyncClient, db: AsyncSession, citizen: Person, pdp_staff: Person
) -> None:
    # Asked on Wed 3 Feb 2027, the eve of Tết: 15 working days are Thu 11 Feb .. Wed 3 Mar.
    code = await asked_for_a_supplement(client, citizen, pdp_staff, datetime(2027, 2, 3, 10, 0))
    mine = (await client.get(f"/api/v1/dossiers/{code}", headers=citizen.headers)).json()
    assert mine["supplement_due_at"] == "2027-03-03T10:00:00Z"  # 17:00 local
    assert mine["timeline"][-1]["data"]["supplement_due_at"] == "2027-03-03T10:00:00+00:00"

    # The last afternoon of the period: nothing happens yet.
    await travel_to(client, datetime(2027, 3, 3, 16, 30), citizen, pdp_staff)
    await stop_job_runs(db)
    dossier = (await db.execute(sa.select(Dossier).where(Dossier.code == code))).scalar_one()
    assert dossier.status == "supplement_requested"

    # After its close of business the job stops processing, once, as the system.
    await travel_to(client, datetime(2027, 3, 3, 17, 1), citizen, pdp_staff)
    await stop_job_runs(db)
    await stop_job_runs(db)  # the next slot finds nothing more to do
    mine = (await client.get(f"/api/v1/dossiers/{code}", headers=citizen.headers)).json()
    assert mine["status"] == "stopped" and mine["paused"] is False
    assert mine["supplement_due_at"] is None and mine["allowed_actions"] == []
    assert mine["outcome_reasons"] == ["supplement_not_provided"]
    last = mine["timeline"][-1]
    assert (last["action"], last["actor_role"], last["from_status"], last["to_status"]) == (
        "supplement_expired",
        "system",
        "supplement_requested",
        "stopped",
    )
    assert last["label"] == "Dừng xử lý do quá hạn bổ sung hồ sơ"
    assert [e["action"] for e in mine["timeline"]].count("supplement_expired") == 1

    # The citizen is told through the same outbox event as every status change.
    payloads = await status_jobs(db)
    assert [p["status"] for p in payloads] == [
        "submitted",
        "received",
        "supplement_requested",
        "stopped",
    ]
    assert payloads[-1]["action"] == "supplement_expired"
    jsonschema.validate(payloads[-1], json.loads(PAYLOAD_SCHEMA.read_text(encoding="utf-8")))
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
    assert len([n for n in inbox if n.kind == "dossier.status_changed"]) == 4

    late = await client.post(
        f"/api/v1/dossiers/{code}/supplement", headers=citizen.headers, json={"note": "Gửi muộn"}
    )
    assert late.status_code == 409 and late.json()["code"] == "dossier.invalid_transition"


async def test_a_supplement_after_the_deadline_is_refused_even_before_the_job_runs(
    client: httpx.AsyncClient, db: AsyncSession, citizen: Person, pdp_staff: Person
) -> None:
    code = await asked_for_a_supplement(client, citizen, pdp_staff, datetime(2027, 3, 1, 9, 0))
    # Mon 1 Mar + 15 working days = Mon 22 Mar, 17:00; it is now 17:05.
    await travel_to(client, datetime(2027, 3, 22, 17, 5), citizen, pdp_staff)
    media_id = await upload_pdf(client, citizen.headers)
    late = await client.post(
        f"/api/v1/dossiers/{code}/supplement",
        headers=citizen.headers,
        json={
            "note": "Muộn",
            "documents": [{"document_code": "giay_chung_sinh", "media_id": media_id}],
        },
    )
    assert late.status_code == 409, late.text
    assert late.json()["code"] == "dossier.supplement_period_expired"
    assert "17:00 22/03/2027" in late.json()["detail"]
    mine = (await client.get(f"/api/v1/dossiers/{code}", headers=citizen.headers)).json()
    assert mine["status"] == "supplement_requested"
    assert mine["allowed_actions"] == ["withdraw"]  # no longer offered
    assert [d["stage"] for d in mine["documents"]] == ["submission"]  # nothing half written


async def test_a_supplement_in_time_lifts_the_deadline(
    client: httpx.AsyncClient, db: AsyncSession, citizen: Person, pdp_staff: Person
) -> None:
    code = await asked_for_a_supplement(client, citizen, pdp_staff, datetime(2027, 3, 1, 9, 0))
    await travel_to(client, datetime(2027, 3, 22, 16, 59), citizen, pdp_staff)
    supplied = await client.post(
        f"/api/v1/dossiers/{code}/supplement", headers=citizen.headers, json={"note": "Đã bổ sung"}
    )
    assert supplied.status_code == 200, supplied.text
    assert supplied.json()["supplement_due_at"] is None
    await travel_to(client, datetime(2027, 4, 30, 9, 0), citizen, pdp_staff)
    await stop_job_runs(db)
    mine = (await client.get(f"/api/v1/dossiers/{code}", headers=citizen.headers)).json()
    assert mine["status"] == "in_progress"


async def test_the_stop_leaves_other_dossiers_alone(
    client: httpx.AsyncClient, db: AsyncSession, citizen: Person, pdp_staff: Person
) -> None:
    expired = await asked_for_a_supplement(client, citizen, pdp_staff, datetime(2027, 3, 1, 9, 0))
    fresh = await asked_for_a_supplement(client, citizen, pdp_staff, datetime(2027, 3, 10, 9, 0))
    working = await new_dossier(client, citizen)
    await act(client, pdp_staff, working, action="receive")
    await travel_to(client, datetime(2027, 3, 23, 9, 0), citizen, pdp_staff)
    async with session_factory()() as session, session.begin():
        assert await service.stop_unsupplemented(session) == 1
    async with session_factory()() as session, session.begin():
        assert await service.stop_unsupplemented(session) == 0  # idempotent
    statuses = dict((await db.execute(sa.select(Dossier.code, Dossier.status))).all())
    assert statuses == {expired: "stopped", fresh: "supplement_requested", working: "received"}


def test_the_stop_is_a_registered_periodic_job() -> None:
    load_job_modules()
    assert PERIODIC["dossiers.stop_unsupplemented"].every.total_seconds() == 15 * 60
