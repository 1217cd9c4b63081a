from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import get_settings
from app.notifications.backends import close_backends
from app.notifications.config import get_notification_settings
from tests.cameras.support import SECRET
from tests.support.flows import seed_wards


@pytest.fixture
def camera_settings(monkeypatch: pytest.MonkeyPatch, database_url: str) -> object:
    # After `database_url`: it replaces the cached settings once per session.
    settings = get_settings()
    monkeypatch.setattr(settings, "camera_webhook_secrets", [SECRET])
    return settings


@pytest.fixture
async def wards(db: AsyncSession) -> None:
    await seed_wards(db)


@pytest.fixture
async def ioc(
    app: object, db: AsyncSession, camera_settings: object, wards: None
) -> AsyncIterator[httpx.AsyncClient]:
    """The operations centre: calls from inside the city network (10.20.0.0/16)."""
    transport = httpx.ASGITransport(app=app, client=("10.20.30.40", 40000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://internal") as http:
        yield http


@pytest.fixture(autouse=True)
async def push_log(
    tmp_root: Path, monkeypatch: pytest.MonkeyPatch, database_url: str
) -> AsyncIterator[Path]:
    """Pushes go to a fresh file sink (never var/push.jsonl of the work tree)."""
    path = tmp_root / "camera-push.jsonl"
    path.unlink(missing_ok=True)
    settings = get_notification_settings()
    monkeypatch.setattr(settings, "push_backend", "file")
    monkeypatch.setattr(settings, "push_file_path", path)
    yield path
    await close_backends()
    path.unlink(missing_ok=True)
