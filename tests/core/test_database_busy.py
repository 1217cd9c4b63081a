from __future__ import annotations

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from app.core import handlers


async def test_a_locked_or_unreachable_database_is_a_503_to_retry_not_a_500():
    app = FastAPI()
    handlers.install(app)

    @app.get("/busy")
    async def busy() -> None:
        raise sa.exc.OperationalError("INSERT ...", {}, Exception("database is locked"))

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/busy", headers={"Accept-Language": "en"})

    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["code"] == "service.unavailable"
    assert "database is locked" not in response.text
