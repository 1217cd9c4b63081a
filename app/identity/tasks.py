"""Job handlers of the identity domain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core import clock
from app.core.jobs import job_handler, periodic
from app.identity import sms
from app.identity.models import OtpChallenge

SEND_SMS = "identity.send_sms"


@job_handler(SEND_SMS)
async def send_sms(_session: AsyncSession, payload: dict[str, Any]) -> None:
    await sms.get_backend().send(payload["to"], payload["body"])


@periodic("identity.purge_otp_challenges", every=timedelta(hours=1))
async def purge_otp_challenges(session: AsyncSession, _payload: dict[str, Any]) -> None:
    """SMS codes are useless a few minutes after issue; keep a day for abuse investigation."""
    await session.execute(
        sa.delete(OtpChallenge).where(OtpChallenge.expires_at < clock.now() - timedelta(days=1))
    )
