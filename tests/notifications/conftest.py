"""Fixtures of the notifications tests: the push file sink, the fake FCM server, users."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin_units import service as admin_units
from app.admin_units.data import all_units
from app.admin_units.models import AdminUnit
from app.notifications.backends import close_backends
from app.notifications.config import get_notification_settings
from scripts.fake_fcm import Spawned, spawn


class SettingsOverride:
    """Set settings through the environment for one test; restored afterwards."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, **values: Any) -> None:
        for name, value in values.items():
            key = name.upper()
            self._saved.setdefault(key, os.environ.get(key))
            os.environ[key] = str(value)
        get_notification_settings.cache_clear()

    def restore(self) -> None:
        for key, value in self._saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_notification_settings.cache_clear()


@pytest.fixture
async def settings_env() -> AsyncIterator[SettingsOverride]:
    override = SettingsOverride()
    yield override
    await close_backends()
    override.restore()


@pytest.fixture
async def push_log(tmp_root: Path, settings_env: SettingsOverride) -> AsyncIterator[Path]:
    """The file push backend, writing to a fresh file."""
    path = tmp_root / "push.jsonl"
    path.unlink(missing_ok=True)
    settings_env.set(push_backend="file", push_file_path=path)
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture(scope="session")
def fake_fcm_server(tmp_root: Path) -> Iterator[Spawned]:
    fake = spawn(tmp_root / "fake-fcm-sa.json")
    yield fake
    fake.stop()


class FakeFcmControl:
    def __init__(self, server: Spawned) -> None:
        self.server = server
        self.http = httpx.AsyncClient(base_url=server.base_url, timeout=10)

    async def rule(
        self,
        *,
        errors: list[str],
        token: str | None = None,
        prefix: str | None = None,
        sticky: bool = False,
        retry_after: int | None = None,
    ) -> None:
        body = {
            "token": token,
            "prefix": prefix,
            "errors": errors,
            "sticky": sticky,
            "retry_after": retry_after,
        }
        (await self.http.post("/_fake/rules", json=body)).raise_for_status()

    async def fail_token_endpoint(self, times: int, status: int = 503) -> None:
        response = await self.http.post(
            "/_fake/token-endpoint", json={"fail": times, "status": status}
        )
        response.raise_for_status()

    async def messages(self, token: str | None = None) -> list[dict[str, Any]]:
        params = {"token": token} if token else {}
        response = await self.http.get("/_fake/messages", params=params)
        response.raise_for_status()
        return [m["message"] for m in response.json()["messages"]]

    async def stats(self) -> dict[str, int]:
        return (await self.http.get("/_fake/stats")).json()

    async def reset(self) -> None:
        (await self.http.post("/_fake/reset")).raise_for_status()


@pytest.fixture
async def fake_fcm(
    fake_fcm_server: Spawned, settings_env: SettingsOverride
) -> AsyncIterator[FakeFcmControl]:
    """PUSH_BACKEND=fcm: the real firebase-admin client against the fake, over real HTTP."""
    settings_env.set(
        push_backend="fcm",
        fcm_base_url=fake_fcm_server.base_url,
        fcm_credentials_file=fake_fcm_server.credentials_file,
        push_retry_base_seconds=2,
    )
    control = FakeFcmControl(fake_fcm_server)
    await control.reset()
    yield control
    await control.http.aclose()


@pytest.fixture
async def wards(db: AsyncSession) -> None:
    # Fresh rows, not `all_units()`: its model_copy() shares SQLAlchemy instance state with the
    # module-level objects, so on the second backend of a run they look persisted and are
    # never inserted (reported to the lead; tests.support.flows.seed_wards has the same issue).
    for unit in all_units():
        await admin_units.upsert(db, AdminUnit(**unit.model_dump()))
    await db.commit()
