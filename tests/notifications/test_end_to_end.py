"""Done-when, as a citizen would try it: a real uvicorn server (with its in-process worker), the
real firebase-admin client, and the fake FCM over real HTTP on 127.0.0.1.

The dossiers domain is not on this branch: the test puts into the outbox exactly the
`dossier.status_changed` job the dossiers domain emits when staff change a dossier's status.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import PROJECT_ROOT
from app.core.db import session_factory
from app.core.jobs import enqueue
from scripts.fake_fcm import Spawned, spawn
from tests.notifications.contracts import assert_valid_push
from tests.notifications.helpers import deliveries
from tests.support.flows import PASSWORD, last_code

pytestmark = pytest.mark.slow
PHONE, E164 = "0919000001", "+84919000001"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 15.0) -> Any:
    """Poll until `check` returns something truthy (the worker runs in another process)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


def start_server(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "app", "serve"], cwd=PROJECT_ROOT, env=env)


@pytest.fixture
async def server(database_url: str, tmp_root: Path, db) -> AsyncIterator[dict[str, Any]]:
    fake = spawn(tmp_root / "e2e-fcm-sa.json")
    port = free_port()
    sms = tmp_root / "e2e-sms.jsonl"
    sms.unlink(missing_ok=True)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "PORT": str(port),
        "HOST": "127.0.0.1",
        "RUN_WORKER_IN_PROCESS": "true",
        "WORKER_POLL_INTERVAL_SECONDS": "0.1",
        "SMS_FILE_PATH": str(sms),
        "PUSH_BACKEND": "fcm",
        "FCM_BASE_URL": fake.base_url,
        "FCM_CREDENTIALS_FILE": str(fake.credentials_file),
        # "Down for a minute", scaled to seconds: back-off from 0.3 s, capped at 1 s.
        "PUSH_RETRY_BASE_SECONDS": "0.3",
        "PUSH_RETRY_MAX_SECONDS": "1",
        "PUSH_MAX_ATTEMPTS": "30",
    }
    process = start_server(env)
    base = f"http://127.0.0.1:{port}"
    state: dict[str, Any] = {"fake": fake, "base": base, "sms": sms, "tmp": tmp_root}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:

            async def up() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(up, within=30)
        yield state
    finally:
        process.terminate()
        process.wait(timeout=15)
        state["fake"].stop()


async def _fake_messages(fake: Spawned, token: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        body = (await http.get("/_fake/messages", params={"token": token})).json()
        return [m["message"] for m in body["messages"]]


async def _rule(fake: Spawned, **spec: Any) -> None:
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        (await http.post("/_fake/rules", json=spec)).raise_for_status()


async def _staff_changes_dossier_status(user_id: str, status: str, event: str) -> None:
    async with session_factory()() as session, session.begin():
        await enqueue(
            session,
            "dossier.status_changed",
            {
                "user_id": user_id,
                "dossier_id": "0193a1b2-0000-7000-8000-00000000e2e0",
                "dossier_code": "TNG-PDP-2026-000777",
                "status": status,
                "procedure_name": "Đăng ký khai sinh",
                "event_id": event,
            },
        )


async def test_citizen_gets_the_push_and_the_inbox_through_fcm(server: dict[str, Any]) -> None:
    fake: Spawned = server["fake"]
    async with httpx.AsyncClient(base_url=server["base"], timeout=20) as http:
        # Register and sign in as a citizen would.
        otp_sent = await http.post("/api/v1/auth/otp", json={"phone": PHONE, "purpose": "register"})
        assert otp_sent.status_code == 202
        await eventually(lambda: _has_sms_to(server["sms"], E164))
        otp = last_code(server["sms"], E164)
        signed = await http.post(
            "/api/v1/auth/register",
            json={"phone": PHONE, "otp": otp, "password": PASSWORD, "full_name": "Trần Thị Mai"},
        )
        assert signed.status_code == 201, signed.text
        headers = {"Authorization": f"Bearer {signed.json()['access_token']}"}
        me = (await http.get("/api/v1/me", headers=headers)).json()
        for token in ("e2e-phone", "e2e-old-phone"):
            device = await http.post(
                "/api/v1/devices", headers=headers, json={"token": token, "platform": "android"}
            )
            assert device.status_code == 200

        # The old phone was reset: FCM answers UNREGISTERED for it.
        await _rule(fake, token="e2e-old-phone", errors=["UNREGISTERED"], sticky=True)
        await _staff_changes_dossier_status(me["id"], "received", "e2e-1")
        [push] = await eventually(lambda: _fake_messages(fake, "e2e-phone"))
        assert assert_valid_push(push) == "dossier.status_changed"
        assert push["notification"]["body"].startswith("Hồ sơ TNG-PDP-2026-000777")

        async def old_phone_gone() -> bool:
            listed = (await http.get("/api/v1/devices", headers=headers)).json()["items"]
            return [d["token"] for d in listed] == ["e2e-phone"]

        await eventually(old_phone_gone)

        inbox = (await http.get("/api/v1/notifications", headers=headers)).json()
        assert inbox["unread_count"] == 1
        note = inbox["items"][0]
        assert note["id"] == push["data"]["notification_id"]
        read = await http.post(f"/api/v1/notifications/{note['id']}/read", headers=headers)
        assert read.status_code == 200
        assert (await http.get("/api/v1/notifications", headers=headers)).json()[
            "unread_count"
        ] == 0

        # FCM answers UNAVAILABLE once: the retry gets through.
        await _rule(fake, token="e2e-phone", errors=["UNAVAILABLE"], retry_after=1)
        await _staff_changes_dossier_status(me["id"], "supplement_requested", "e2e-2")
        pushes = await eventually(lambda: _at_least(fake, "e2e-phone", 2))
        assert pushes[-1]["data"]["status"] == "supplement_requested"

        # FCM is down (scaled-down minute): nothing is lost once it is back.
        port = fake.port
        fake.stop()
        await _staff_changes_dossier_status(me["id"], "approved", "e2e-3")
        # The worker keeps trying while FCM is away (connection refused: retried with back-off).
        await eventually(lambda: _attempts_while_down(min_attempts=2))
        server["fake"] = spawn(server["tmp"] / "e2e-fcm-sa-2.json", port=port)
        [after] = await eventually(lambda: _fake_messages(server["fake"], "e2e-phone"), within=20)
        assert after["data"]["status"] == "approved"
        assert assert_valid_push(after) == "dossier.status_changed"
        # The worker sends first and records the outcome after: wait for that write to land.

        async def settled() -> set[tuple[str, str | None]] | None:
            found = {(d.status, d.error_code) for d in await deliveries()}
            return found if "retrying" not in {s for s, _ in found} else None

        statuses = await eventually(settled)
        assert ("unregistered", "UNREGISTERED") in statuses
        assert {s for s, _ in statuses} == {"sent", "unregistered"}
        inbox = (await http.get("/api/v1/notifications", headers=headers)).json()
        assert inbox["unread_count"] == 2 and len(inbox["items"]) == 3


async def _has_sms_to(path: Path, phone_e164: str) -> bool:
    """The sink's file may exist (an earlier test's, or a line half written) before our code."""

    def read() -> str:
        return path.read_text(encoding="utf-8") if path.exists() else ""

    return any(
        f'"to": "{phone_e164}"' in line or f'"to":"{phone_e164}"' in line
        for line in (await asyncio.to_thread(read)).splitlines()
    )


async def _at_least(fake: Spawned, token: str, count: int) -> list[dict[str, Any]] | None:
    messages = await _fake_messages(fake, token)
    return messages if len(messages) >= count else None


async def _attempts_while_down(min_attempts: int) -> bool:
    rows = await deliveries()
    return any(d.status == "retrying" and d.attempts >= min_attempts for d in rows)
