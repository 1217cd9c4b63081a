from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import get_settings
from tests.cameras.support import SECRET
from tests.support.flows import seed_wards


@pytest.fixture
def camera_settings(monkeypatch: pytest.MonkeyPatch) -> object:
    settings = get_settings()
    monkeypatch.setattr(settings, "camera_webhook_secrets", [SECRET])
    return settings


@pytest.fixture
async def wards(db: AsyncSession) -> None:
    await seed_wards(db)


@pytest.fixture
async def ioc(app: object, db: AsyncSession, camera_settings: object,
              wards: None) -> AsyncIterator[httpx.AsyncClient]:
    """The operations centre: calls from inside the city network (10.20.0.0/16)."""
    transport = httpx.ASGITransport(app=app, client=("10.20.30.40", 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://internal") as http:
        yield http
