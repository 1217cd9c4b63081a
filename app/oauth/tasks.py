"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0), sent through the job outbox:
retried with backoff when the client's endpoint is down, parked as dead after the last attempt."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from app.core import clock
from app.core.jobs import job_handler, periodic
from app.core.logging import get_logger
from app.oauth import outbound, replay, service
from app.oauth.models import (
    AuthorizationCode,
    AuthorizationRequest,
    OAuthClient,
    RevokedAccessToken,
)

log = get_logger(__name__)


@job_handler(service.BACKCHANNEL_LOGOUT)
async def send_backchannel_logout(session: AsyncSession, payload: dict[str, Any]) -> None:
    client = await session.get(OAuthClient, payload["client_id"])
    if client is None or not client.backchannel_logout_uri:
        return  # the client went away or no longer asks: nothing to tell
    token = service.logout_token(client, sub=payload["sub"], sid=payload["sid"])
    try:  # never to an internal address (outbound: checked again after resolving the host)
        status = await outbound.post_form(client.backchannel_logout_uri, {"logout_token": token})
    except outbound.OutboundRefused:
        log.warning("oauth_backchannel_logout_refused", client_id=client.id)
        return  # retrying cannot help; the partner must register a public endpoint
    if status not in (200, 204):
        raise RuntimeError(f"back-channel logout answered {status}")


# A code presented again long after it expired can no longer be told from garbage, but within a
# day its reuse still revokes the tokens it issued.
CODE_KEEP = timedelta(days=1)


@periodic("oauth.purge_expired", every=timedelta(hours=1))
async def purge_expired(session: AsyncSession, _payload: dict[str, Any]) -> None:
    """One-time values, stored requests, codes and revocation records past their use."""
    now = clock.now()
    await replay.purge(session)
    await session.execute(
        sa.delete(AuthorizationRequest).where(col(AuthorizationRequest.expires_at) < now)
    )
    await session.execute(
        sa.delete(AuthorizationCode).where(col(AuthorizationCode.expires_at) < now - CODE_KEEP)
    )
    await session.execute(
        sa.delete(RevokedAccessToken).where(col(RevokedAccessToken.expires_at) < now)
    )
