"""Housekeeping that keeps personal data and tables from growing without end.

Finished jobs carry payloads such as SMS bodies with phone numbers: they are deleted after
JOB_RETENTION_DAYS (dead ones after DEAD_JOB_RETENTION_DAYS, long enough to investigate). Audit
entries are deleted once older than AUDIT_RETENTION_DAYS.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import audit, clock, ratelimit
from app.core.config import get_settings
from app.core.jobs import DEAD, DONE, Job, periodic
from app.core.logging import get_logger
from app.core.tables import rows_matched

log = get_logger("maintenance")


@periodic("maintenance.purge_jobs", every=timedelta(hours=1))
async def purge_jobs(session: AsyncSession, _payload: dict[str, Any]) -> None:
    settings = get_settings()
    now = clock.now()
    done = await session.execute(
        sa.delete(Job).where(
            col(Job.status) == DONE,
            col(Job.finished_at) < now - timedelta(days=settings.job_retention_days),
        )
    )
    dead = await session.execute(
        sa.delete(Job).where(
            col(Job.status) == DEAD,
            col(Job.finished_at) < now - timedelta(days=settings.dead_job_retention_days),
        )
    )
    log.info("jobs_purged", done=rows_matched(done), dead=rows_matched(dead))


@periodic("maintenance.purge_rate_limits", every=timedelta(hours=1))
async def purge_rate_limits(session: AsyncSession, _payload: dict[str, Any]) -> None:
    await ratelimit.purge_expired(session)


@periodic("maintenance.purge_audit_events", every=timedelta(hours=1))
async def purge_audit_events(session: AsyncSession, _payload: dict[str, Any]) -> None:
    log.info("audit_events_purged", deleted=await audit.purge_expired(session))
