"""Background jobs of the cameras domain."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras import integrations, positions, service
from app.core.jobs import job_handler, periodic


@job_handler(service.PROCESS_JOB)
async def process_alert(session: AsyncSession, payload: dict[str, Any]) -> None:
    await service.process_alert(session, uuid.UUID(payload["alert_id"]))


@job_handler(service.OFFLINE_CHECK_JOB)
async def offline_check(session: AsyncSession, payload: dict[str, Any]) -> None:
    """Periodic: flag silent cameras offline, then schedule the next check."""
    await service.run_offline_check(session)


@job_handler(integrations.CAMERA_OFFLINE_JOB)
async def camera_offline(session: AsyncSession, payload: dict[str, Any]) -> None:
    await integrations.tell_ward_camera_offline(session, payload)


@job_handler(integrations.CAMERA_EVENT_JOB)
async def camera_event(session: AsyncSession, payload: dict[str, Any]) -> None:
    await integrations.tell_ward_camera_event(session, payload)


@periodic("cameras.forget_stale_positions", every=timedelta(hours=1))
async def forget_stale_positions(session: AsyncSession, _payload: dict[str, Any]) -> None:
    await positions.forget_stale(session)
