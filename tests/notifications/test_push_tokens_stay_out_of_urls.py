"""Push tokens travel in request bodies, never in URLs, and no log line carries one: a URL is
written to access logs, proxies' logs and traces along the way, and a token lets anyone who reads
it push to the citizen's phone (FCM) and follow the device."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.cameras.models import DevicePosition
from app.core.config import PROJECT_ROOT
from tests.notifications.helpers import account, add_device, devices_of
from tests.support.servers import free_port

LAT, LON = 21.5942, 105.8482


async def test_a_device_is_removed_with_its_token_in_the_body(client, db: AsyncSession) -> None:
    an = await account(client, db, "0912600001")
    binh = await account(client, db, "0912600002")
    await add_device(client, an, "tok-body-delete")

    # Someone else's token: not theirs to remove.
    theirs = await client.request(
        "DELETE", "/api/v1/devices", json={"token": "tok-body-delete"}, headers=binh.headers
    )
    assert theirs.status_code == 404 and theirs.json()["code"] == "device.not_found"
    mine = await client.request(
        "DELETE", "/api/v1/devices", json={"token": "tok-body-delete"}, headers=an.headers
    )
    assert mine.status_code == 204
    assert await devices_of(an.id) == []
    missing = await client.request("DELETE", "/api/v1/devices", json={}, headers=an.headers)
    assert missing.status_code == 422


async def test_a_device_reports_and_forgets_its_position_with_its_token_in_the_body(
    client, db: AsyncSession
) -> None:
    an = await account(client, db, "0912600003")
    await add_device(client, an, "tok-body-location")

    reported = await client.put(
        "/api/v1/devices/location",
        json={"token": "tok-body-location", "lat": LAT, "lon": LON},
        headers=an.headers,
    )
    assert reported.status_code == 200, reported.text
    assert reported.json()["cell"] == "2159:10584"
    stranger = await account(client, db, "0912600004")
    refused = await client.put(
        "/api/v1/devices/location",
        json={"token": "tok-body-location", "lat": LAT, "lon": LON},
        headers=stranger.headers,
    )
    assert refused.status_code == 404
    forgotten = await client.request(
        "DELETE",
        "/api/v1/devices/location",
        json={"token": "tok-body-location"},
        headers=an.headers,
    )
    assert forgotten.status_code == 204
    assert (await db.execute(sa.select(DevicePosition))).first() is None


async def test_no_documented_path_other_than_a_deprecated_one_takes_a_push_token(
    client,
) -> None:
    document = (await client.get("/openapi.json")).json()
    for path, operations in document["paths"].items():
        if "{token}" in path:
            assert all(op.get("deprecated") for op in operations.values()), path


@pytest.fixture
def logging_server(database_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real server on the test database logging every request (INFO, the most production
    allows: DEBUG logs the database driver's parameters); yields its URL and its output."""
    port = free_port()
    log_path = tmp_path / "server.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "LOG_LEVEL": "INFO",
        "RUN_WORKER_IN_PROCESS": "false",
    }
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                assert server.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the server did not start"
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            yield base, log_path
        finally:
            server.terminate()
            server.wait(timeout=30)


@pytest.mark.slow
async def test_no_log_line_carries_a_push_token(
    client, db: AsyncSession, logging_server: tuple[str, Path]
) -> None:
    """Called on the current paths and on the deprecated ones that old app versions still use,
    the server's output never shows the token."""
    an = await account(client, db, "0912600005")
    secret = "fcm-secret-token-" + "x" * 120
    base, log_path = logging_server
    async with httpx.AsyncClient(base_url=base, headers=an.headers, timeout=10) as http:
        answers = [
            await http.post("/api/v1/devices", json={"token": secret, "platform": "android"}),
            await http.put(
                "/api/v1/devices/location", json={"token": secret, "lat": LAT, "lon": LON}
            ),
            await http.put(f"/api/v1/devices/{secret}/location", json={"lat": LAT, "lon": LON}),
            await http.delete(f"/api/v1/devices/{secret}/location"),
            await http.request("DELETE", "/api/v1/devices/location", json={"token": secret}),
            await http.delete(f"/api/v1/devices/{secret}"),  # the old app's call at logout
            await http.request("DELETE", "/api/v1/devices", json={"token": secret}),
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 204, 204, 204, 404]
    output = log_path.read_text()
    # The server did log these requests (an empty log would prove nothing)...
    assert output.count('"event": "request"') >= len(answers)
    assert "/api/v1/devices/{token}/location" in output
    # ...and never the token.
    assert secret not in output
