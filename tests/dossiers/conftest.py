from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.dossiers.service import sync_catalogue
from tests.support.dossiers import Person, person
from tests.support.flows import seed_wards


@pytest.fixture
async def catalogue(db: AsyncSession) -> AsyncIterator[None]:
    await seed_wards(db)
    await sync_catalogue(db)
    await db.commit()
    yield


@pytest.fixture
async def citizen(client: httpx.AsyncClient, db: AsyncSession, catalogue: None) -> Person:
    return await person(client, db, "0912345678", name="Trần Thị Mai")


@pytest.fixture
async def other_citizen(client: httpx.AsyncClient, db: AsyncSession, catalogue: None) -> Person:
    return await person(client, db, "0912000111", name="Lê Văn Bình")


@pytest.fixture
async def pdp_staff(client: httpx.AsyncClient, db: AsyncSession, catalogue: None) -> Person:
    return await person(client, db, "0981000001", "ward_staff", "TNG-PDP", "Cán bộ PĐP")


@pytest.fixture
async def gs_staff(client: httpx.AsyncClient, db: AsyncSession, catalogue: None) -> Person:
    return await person(client, db, "0981000002", "ward_staff", "TNG-GS", "Cán bộ Gia Sàng")


@pytest.fixture
async def city_admin(client: httpx.AsyncClient, db: AsyncSession, catalogue: None) -> Person:
    return await person(client, db, "0981000000", "city_admin", None, "Quản trị")
