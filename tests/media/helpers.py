"""Steps shared by the media tests."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.flows import bearer, login, make_user


async def citizen(client: httpx.AsyncClient, db: AsyncSession, phone: str) -> dict[str, str]:
    """A citizen's bearer header."""
    await make_user(db, phone, "citizen")
    return bearer(await login(client, phone))
