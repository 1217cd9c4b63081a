"""A real uvicorn on a free 127.0.0.1 port serving the test app, and a scripted browser for the
provider's pages. The issuer (PUBLIC_BASE_URL) is that server's address."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession

from tests.oauth.support import Browser, make_citizen, make_client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


PORT = _free_port()
# Read when the settings are (re)loaded by the database fixture, before the app is created.
os.environ["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{PORT}"


@pytest.fixture
async def rp(db: AsyncSession) -> Any:
    """A confidential partner client (client_secret_basic)."""
    return await make_client(db)


@pytest.fixture
async def browser(live_url: str, db: AsyncSession) -> AsyncIterator[Browser]:
    """A citizen (0912345678) and their browser."""
    await make_citizen(db)
    b = Browser(live_url)
    yield b
    await b.close()


@pytest.fixture(scope="session")
async def live_url(app: object) -> AsyncIterator[str]:
    config = uvicorn.Config(
        app,  # type: ignore[arg-type]
        host="127.0.0.1",
        port=PORT,
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    yield f"http://127.0.0.1:{PORT}"
    server.should_exit = True
    await task
