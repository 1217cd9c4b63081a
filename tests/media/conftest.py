from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.dossiers import Person, person
from tests.support.flows import seed_wards


@pytest.fixture
async def owner(client: httpx.AsyncClient, db: AsyncSession) -> Person:
    await seed_wards(db)
    return await person(client, db, "0912345678")


@pytest.fixture
async def stranger(client: httpx.AsyncClient, db: AsyncSession, owner: Person) -> Person:
    return await person(client, db, "0912000111")
