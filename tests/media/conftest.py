from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.support.dossiers import Person, cheap_argon2, person
from tests.support.flows import seed_wards


@pytest.fixture
async def owner(client: httpx.AsyncClient, db: AsyncSession) -> Person:
    await seed_wards(db)
    return await person(client, db, "0912345678")


@pytest.fixture
async def stranger(client: httpx.AsyncClient, db: AsyncSession, owner: Person) -> Person:
    return await person(client, db, "0912000111")


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)
