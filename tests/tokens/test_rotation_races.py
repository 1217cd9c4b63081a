"""Refresh-token rotation under attack: one refresh token presented many times at once, across two
server processes, yields at most one successor, and the family is revoked as reuse."""

from __future__ import annotations

import asyncio

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.errors import AppError
from app.tokens import errors
from app.tokens import service as tokens
from app.tokens.models import AuthSession, RefreshToken
from tests.support.flows import login, make_user
from tests.support.servers import forwarded_for

ATTEMPTS = 24


async def test_one_app_refresh_token_presented_at_once_everywhere_has_one_successor_at_most(
    client: httpx.AsyncClient, db: AsyncSession, two_servers: str
) -> None:
    await make_user(db, "0912777001", "citizen")
    presented = (await login(client, "0912777001"))["refresh_token"]
    family = await tokens.find_session_by_refresh_token(db, presented)
    assert family is not None
    family_id = family.id
    await db.commit()

    async with httpx.AsyncClient(base_url=two_servers, timeout=60) as http:
        answers = await asyncio.gather(
            *(
                http.post(
                    "/api/v1/auth/refresh",
                    json={"refresh_token": presented},
                    headers=forwarded_for(n),
                )
                for n in range(ATTEMPTS)
            )
        )

    served = [a for a in answers if a.status_code == 200]
    assert len(served) <= 1, [a.text for a in served]
    refused = [a for a in answers if a.status_code != 200]
    assert {a.status_code for a in refused} == {401}, {a.text for a in refused}
    assert {a.json()["code"] for a in refused} <= {
        "auth.refresh_token_reused",
        "auth.refresh_token_invalid",
    }
    assert any(a.json()["code"] == "auth.refresh_token_reused" for a in refused)
    rows = (
        (await db.execute(sa.select(RefreshToken).where(RefreshToken.session_id == family_id)))
        .scalars()
        .all()
    )
    assert len(rows) <= 2  # the token presented and at most one successor
    ended = (
        await db.execute(
            sa.select(AuthSession)
            .where(AuthSession.id == family_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    assert ended.revoked_at is not None and ended.revoke_reason == "refresh_token_reuse"
    for answer in served:  # the successor the winner got died with its family
        again = await client.post(
            "/api/v1/auth/refresh", json={"refresh_token": answer.json()["refresh_token"]}
        )
        assert again.status_code == 401


async def test_within_the_grace_window_one_retry_is_served_and_the_next_is_reuse(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    await make_user(db, "0912777002", "citizen")
    presented = (await login(client, "0912777002"))["refresh_token"]
    family, _ = await tokens.rotate_refresh_token(db, presented, grace_seconds=30)
    await db.commit()
    await tokens.rotate_refresh_token(db, presented, grace_seconds=30)  # a lost answer's retry
    await db.commit()
    try:
        await tokens.rotate_refresh_token(db, presented, grace_seconds=30)
    except AppError as exc:
        assert exc.error is errors.REFRESH_REUSED
    else:
        raise AssertionError("a third presentation was served")
    await db.commit()
    assert await tokens.active_session(db, family.id) is None
