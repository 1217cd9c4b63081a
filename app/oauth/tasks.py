"""Back-channel logout (OpenID Connect Back-Channel Logout 1.0), sent through the job outbox:
retried with backoff when the client's endpoint is down, parked as dead after the last attempt."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.jobs import job_handler
from app.oauth import service
from app.oauth.models import OAuthClient


@job_handler(service.BACKCHANNEL_LOGOUT)
async def send_backchannel_logout(session: AsyncSession, payload: dict[str, Any]) -> None:
    client = await session.get(OAuthClient, payload["client_id"])
    if client is None or not client.backchannel_logout_uri:
        return  # the client went away or no longer asks: nothing to tell
    token = service.logout_token(client, sub=payload["sub"], sid=payload["sid"])
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as http:
        response = await http.post(client.backchannel_logout_uri, data={"logout_token": token},
                                   headers={"Cache-Control": "no-store"})
    if response.status_code not in (200, 204):
        raise RuntimeError(f"back-channel logout answered {response.status_code}")
