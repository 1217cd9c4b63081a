"""The audit log keeps its entries for AUDIT_RETENTION_DAYS and no longer, and shows a citizen
what was done with their data without handing them other people's personal data."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import audit, clock
from app.core.audit import AuditContext, AuditEvent
from app.core.config import get_settings
from app.core.db import session_factory
from app.core.jobs import Worker, load_job_modules, schedule_periodic


async def test_audit_entries_older_than_their_retention_are_purged(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "audit_retention_days", 365)
    load_job_modules()
    now = clock.now()
    expired = AuditEvent(action="identity.read", at=now - timedelta(days=366))
    kept = AuditEvent(action="identity.read", at=now - timedelta(days=364))
    db.add_all([expired, kept])
    await db.commit()

    await schedule_periodic(session_factory(), {})
    worker = Worker(session_factory(), name="audit-retention-test")
    while await worker.run_once():
        pass

    remaining = set((await db.execute(sa.select(AuditEvent.id))).scalars())
    assert remaining == {kept.id}


async def test_a_citizens_export_of_the_audit_log_carries_no_staff_address_or_account(
    db: AsyncSession,
) -> None:
    citizen, officer = uuid.uuid4(), uuid.uuid4()
    mine = AuditContext(
        actor_id=citizen, actor_role="citizen", ip="203.0.113.5", request_id="req-citizen"
    )
    staff = AuditContext(
        actor_id=officer, actor_role="ward_staff", ip="10.20.30.40", request_id="req-staff"
    )
    await audit.record(db, mine, "identity.declared", subject_id=citizen)
    await audit.record(
        db,
        staff,
        "dossiers.staff_read",
        subject_id=citizen,
        resource="dossier:X",
        reason="xử lý hồ sơ",
    )
    await db.commit()

    exported = {e["action"]: e for e in await audit.export_about(db, citizen)}

    read = exported["dossiers.staff_read"]
    assert (read["actor_id"], read["ip"], read["request_id"]) == (None, None, None)
    # What was done, by which role and why stays visible.
    assert (read["actor_role"], read["resource"], read["reason"]) == (
        "ward_staff",
        "dossier:X",
        "xử lý hồ sơ",
    )
    own = exported["identity.declared"]
    assert (own["actor_id"], own["ip"]) == (str(citizen), "203.0.113.5")
    assert "10.20.30.40" not in str(exported) and str(officer) not in str(exported)
