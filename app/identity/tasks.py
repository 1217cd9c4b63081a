"""Job handlers of the identity domain."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock
from app.core.jobs import job_handler, periodic
from app.core.security import decrypt_pii
from app.identity import service, sms
from app.identity.models import OtpChallenge


@job_handler(service.SEND_SMS)
async def send_sms(session: AsyncSession, payload: dict[str, Any]) -> None:
    """Send a code's SMS, if it is one this number may receive (`otp_deliverable`). The text
    travels sealed in the outbox; jobs queued before it was sealed carry `body` in clear."""
    if "purpose" in payload and not await service.otp_deliverable(
        session, payload["to"], payload["purpose"]
    ):
        return
    body = payload.get("body") or decrypt_pii(payload["body_sealed"], context="sms")
    await sms.get_backend().send(payload["to"], body)


@periodic("identity.purge_otp_challenges", every=timedelta(hours=1))
async def purge_otp_challenges(session: AsyncSession, _payload: dict[str, Any]) -> None:
    """SMS codes are useless a few minutes after issue; keep a day for abuse investigation."""
    await session.execute(
        sa.delete(OtpChallenge).where(
            col(OtpChallenge.expires_at) < clock.now() - timedelta(days=1)
        )
    )
