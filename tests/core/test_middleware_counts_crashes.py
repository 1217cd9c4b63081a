"""The request middleware must account for answers to unhandled errors too."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from starlette.middleware.errors import ServerErrorMiddleware

from app.core.middleware import RequestContextMiddleware


def _answered(method: str, route: str, status: str) -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0


async def test_a_crash_is_counted_as_a_500_and_still_raised():
    async def crashing_app(scope, receive, send):
        raise RuntimeError("boom")

    # As in the app: Starlette's ServerErrorMiddleware answers 500, then re-raises.
    app = RequestContextMiddleware(ServerErrorMiddleware(crashing_app), max_body_bytes=1024)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/crash",
        "raw_path": b"/crash",
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    before = _answered("GET", "unmatched", "500")

    with pytest.raises(RuntimeError):
        await app(scope, receive, send)

    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 500
    assert b"x-request-id" in dict(sent[0]["headers"])
    assert _answered("GET", "unmatched", "500") == before + 1
