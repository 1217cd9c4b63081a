"""The test's app on a real socket, for real HTTP clients (tuspy, a raw socket cut off mid-body)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import uvicorn

from app.core.config import get_settings


@asynccontextmanager
async def serve_on_this_loop(
    app: object, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[str, int]]:
    """Uvicorn serving `app` on this event loop at a free port; yields (base URL, port), with
    PUBLIC_BASE_URL pointed at it (absolute links such as tus's `Location` lead there)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))  # type: ignore[arg-type]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110  (uvicorn offers no event to await)
        await asyncio.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(get_settings(), "public_base_url", base)
    try:
        yield base, port
    finally:
        server.should_exit = True
        await task
        sock.close()
