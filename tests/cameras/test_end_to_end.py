"""Tried as the operations centre would, against a real server (uvicorn, in-process worker, a
separate internal port): sign with the standardwebhooks package, send an accident with a
snapshot, see the incident for the ward's staff with a blurred thumbnail and a push to them;
send it again and see nothing duplicated; send a tampered one, an old one, one from an unknown
camera, a broken JPEG, each refused with its code."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import PROJECT_ROOT
from app.incidents.models import Incident
from app.notifications.models import Notification
from tests.cameras.support import (
    SECRET,
    alert_body,
    b64,
    jpeg,
    make_camera,
    signed_headers,
    staff_with_phone,
)
from tests.notifications.contracts import assert_valid_push

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, public: str, internal: str, push_file: Path) -> None:
        self.public, self.internal, self.push_file = public, internal, push_file


@pytest.fixture
def server(database_url: str, tmp_root: Path) -> Iterator[Server]:
    public_port, internal_port = free_port(), free_port()
    push_file = tmp_root / f"e2e-push-{public_port}.jsonl"
    log = (tmp_root / f"e2e-server-{public_port}.log").open("w")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "CAMERA_WEBHOOK_SECRETS": SECRET,
        "RUN_WORKER_IN_PROCESS": "true",
        "WORKER_POLL_INTERVAL_SECONDS": "0.1",
        "PUSH_BACKEND": "file",
        "PUSH_FILE_PATH": str(push_file),
        "INTERNAL_PORT": str(internal_port),
        "INTERNAL_ROUTES_ON_PUBLIC_LISTENER": "false",
        "LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(public_port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    public = f"http://127.0.0.1:{public_port}"
    try:
        wait_for_start(public, process)
        yield Server(public, f"http://127.0.0.1:{internal_port}", push_file)
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def _up(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for_start(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}")
        if _up(base):
            return
        time.sleep(0.1)
    raise AssertionError("gave up waiting for the server")


async def wait_until(check: Callable[[], Awaitable[Any]], *, what: str, limit: float = 30) -> Any:
    """Poll until `check()` is truthy (a wait for the worker, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


async def post_signed(
    http: httpx.AsyncClient, base: str, body: dict[str, Any] | bytes, **sign: Any
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http.post(
        base + "/internal/v1/camera-alerts", content=raw, headers=signed_headers(raw, **sign)
    )


def sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as session:
        yield session


async def test_operations_centre_against_a_real_server(
    server: Server,
    db: AsyncSession,
    wards: None,
    client: httpx.AsyncClient,
    http: httpx.AsyncClient,
) -> None:
    await make_camera(db)
    staff = await staff_with_phone(client, db, "0914000001", "staff-e2e-token")
    plate = {"label": "plate", "x": 0.40, "y": 0.55, "width": 0.25, "height": 0.12}
    picture = jpeg(960, 540, seed=7)
    accident = alert_body(snapshot=b64(picture), boxes=[plate], plate_text="20A-123.45")

    accepted = await post_signed(http, server.internal, accident, msg_id="msg_e2e_1")
    assert accepted.status_code == 202, accepted.text
    alert_id = accepted.json()["alert_id"]

    async def incident_listed() -> list[dict[str, Any]]:
        answer = await http.get(server.public + "/api/v1/staff/incidents", headers=staff.headers)
        return answer.json()["items"] if answer.status_code == 200 else []

    items = await wait_until(incident_listed, what="the incident in the staff queue")
    assert len(items) == 1 and items[0]["category"] == "accident"
    incident_id = items[0]["id"]
    evidence = (
        await http.get(
            server.public + f"/api/v1/staff/camera-alerts?incident_id={incident_id}",
            headers=staff.headers,
        )
    ).json()["items"]
    assert [e["id"] for e in evidence] == [alert_id]
    assert evidence[0]["snapshot_status"] == "processed" and evidence[0]["plates_blurred"] >= 1
    thumb = await http.get(
        server.public + f"/api/v1/staff/camera-alerts/{alert_id}/snapshot/thumbnail",
        headers=staff.headers,
    )
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    thumbnail = cv2.imdecode(np.frombuffer(thumb.content, np.uint8), cv2.IMREAD_COLOR)
    assert thumbnail.shape[:2] == (180, 320)
    original_small = cv2.resize(
        cv2.imdecode(np.frombuffer(picture, np.uint8), cv2.IMREAD_COLOR),
        (320, 180),
        interpolation=cv2.INTER_AREA,
    )
    y0, y1 = int(plate["y"] * 180), int((plate["y"] + plate["height"]) * 180)
    x0, x1 = int(plate["x"] * 320), int((plate["x"] + plate["width"]) * 320)
    assert sharpness(thumbnail[y0:y1, x0:x1]) < sharpness(original_small[y0:y1, x0:x1]) / 10

    async def staff_pushes() -> list[dict[str, Any]]:
        if not server.push_file.exists():
            return []
        lines = server.push_file.read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["message"] for line in lines]

    pushed = await wait_until(staff_pushes, what="the push to the ward's staff")
    assert [m["token"] for m in pushed] == ["staff-e2e-token"]
    assert assert_valid_push(pushed[0]) == "camera.alert"
    assert pushed[0]["data"]["incident_id"] == incident_id

    # The same message again (a redelivery): the first answer, nothing duplicated.
    again = await post_signed(http, server.internal, accident, msg_id="msg_e2e_1")
    assert again.status_code == 202 and again.json() == accepted.json()
    # Refusals, each with its code.
    raw = json.dumps(alert_body()).encode()
    tampered = await http.post(
        server.internal + "/internal/v1/camera-alerts",
        content=raw.replace(b"accident", b"flooding"),
        headers=signed_headers(raw),
    )
    assert (tampered.status_code, tampered.json()["code"]) == (401, "camera_alert.bad_signature")
    stale = await post_signed(
        http, server.internal, alert_body(), at=datetime.now(UTC) - timedelta(minutes=10)
    )
    assert (stale.status_code, stale.json()["code"]) == (
        401,
        "camera_alert.timestamp_out_of_tolerance",
    )
    unknown = await post_signed(http, server.internal, alert_body("TNG-CAM-NOPE"))
    assert (unknown.status_code, unknown.json()["code"]) == (422, "camera_alert.unknown_camera")
    half = picture[: len(picture) // 2]
    broken = await post_signed(http, server.internal, alert_body(snapshot=b64(half)))
    assert (broken.status_code, broken.json()["code"]) == (422, "camera_alert.snapshot_invalid")
    # Internal routes are not served on the public port.
    hidden = await post_signed(http, server.public, alert_body())
    assert hidden.status_code == 404

    # Give the worker its chance to (wrongly) process anything twice, then count.
    marker = await post_signed(http, server.internal, alert_body(type="crowd"))
    assert marker.status_code == 202

    async def marker_done() -> bool:
        alerts = (
            await http.get(server.public + "/api/v1/staff/camera-alerts", headers=staff.headers)
        ).json()["items"]
        return any(
            a["id"] == marker.json()["alert_id"] and a["status"] == "processed" for a in alerts
        )

    await wait_until(marker_done, what="the last alert processed")
    db.expire_all()
    assert await db.scalar(sa.select(sa.func.count()).select_from(Incident)) == 1
    assert (
        await db.scalar(
            sa.select(sa.func.count())
            .select_from(Notification)
            .where(Notification.kind == "camera.alert")
        )
        == 1
    )

    # The crowd (no incident category) reached the staff as a camera.event; still one
    # camera.alert push for the accident sent twice.
    async def both_pushed() -> list[dict[str, Any]]:
        sent = await staff_pushes()
        return sent if len(sent) >= 2 else []

    sent = await wait_until(both_pushed, what="the crowd notice")
    assert sorted(m["data"]["kind"] for m in sent) == ["camera.alert", "camera.event"]
