"""Job handlers of the identity domain."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from app.core.jobs import job_handler
from app.identity import sms

SEND_SMS = "identity.send_sms"


@job_handler(SEND_SMS)
async def send_sms(_session: AsyncSession, payload: dict[str, Any]) -> None:
    await sms.get_backend().send(payload["to"], payload["body"])
