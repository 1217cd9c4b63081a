"""SMS leaves through the worker: over real HTTP to a gateway (a local fake here) or to a file."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app.core import clock
from app.core.config import PROJECT_ROOT
from app.core.jobs import DONE, PENDING, Job
from app.identity import sms
from app.identity.config import get_identity_settings
from app.identity.service import SEND_SMS
from scripts.fake_sms_gateway import FakeSmsGateway
from tests.support.flows import PASSWORD, run_jobs

KEY = "test-gateway-key"
TO = "+84912345678"
TEXT = "Thai Nguyen ID: mã xác thực của bạn là 123456."


@pytest.fixture
def gateway() -> Iterator[FakeSmsGateway]:
    with FakeSmsGateway(api_key=KEY) as running:
        yield running


@pytest.fixture
def sms_over_http(gateway: FakeSmsGateway) -> Iterator[FakeSmsGateway]:
    """SMS_BACKEND=http pointed at the fake gateway, for this test only."""
    wanted = {
        "SMS_BACKEND": "http",
        "SMS_GATEWAY_URL": gateway.url,
        "SMS_GATEWAY_API_KEY": KEY,
        "SMS_SENDER_NAME": "TNID-TEST",
    }
    saved = {name: os.environ.get(name) for name in wanted}
    os.environ.update(wanted)
    get_identity_settings.cache_clear()
    try:
        yield gateway
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_identity_settings.cache_clear()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_http_backend_delivers_over_real_http(gateway):
    await sms.HttpSmsBackend(gateway.url, KEY, "TNID").send(TO, TEXT)

    (message,) = gateway.messages
    assert (message["to"], message["body"], message["sender"]) == (TO, TEXT, "TNID")


async def test_wrong_api_key_raises_and_nothing_is_sent(gateway):
    with pytest.raises(sms.SmsGatewayError, match="401"):
        await sms.HttpSmsBackend(gateway.url, "not-the-key", "TNID").send(TO, TEXT)

    assert gateway.messages == []


async def test_gateway_server_error_raises_then_the_next_send_succeeds(gateway):
    gateway.fail_next(1, status=503)
    backend = sms.HttpSmsBackend(gateway.url, KEY, "TNID")

    with pytest.raises(sms.SmsGatewayError, match="503") as failure:
        await backend.send(TO, TEXT)
    assert "123456" not in str(failure.value)  # the code never reaches logs or last_error
    assert gateway.messages == []

    await backend.send(TO, TEXT)
    assert len(gateway.messages) == 1
    assert gateway.attempts == 2


async def test_unreachable_gateway_raises():
    backend = sms.HttpSmsBackend(f"http://127.0.0.1:{free_port()}/messages", KEY, "TNID", timeout=2)

    with pytest.raises(sms.SmsGatewayError, match="unreachable"):
        await backend.send(TO, TEXT)


async def test_send_sms_job_fails_is_retried_by_the_worker_and_then_delivered(
    client, db, sms_over_http
):
    assert isinstance(sms.get_backend(), sms.HttpSmsBackend)
    sms_over_http.fail_next(1, status=503)

    response = await client.post(
        "/api/v1/auth/otp", json={"phone": "0912345678", "purpose": "register"}
    )
    assert response.status_code == 202
    await run_jobs()

    job = (await db.execute(sa.select(Job).where(Job.kind == SEND_SMS))).scalar_one()
    assert (job.status, job.attempts) == (PENDING, 1)
    assert "503" in (job.last_error or "")
    assert sms_over_http.messages == []

    await run_jobs()  # not due yet: backoff
    assert sms_over_http.attempts == 1

    clock.advance(timedelta(seconds=5))
    await run_jobs()

    db.expire_all()
    job = (await db.execute(sa.select(Job).where(Job.kind == SEND_SMS))).scalar_one()
    assert (job.status, job.attempts, job.last_error) == (DONE, 2, None)
    (message,) = sms_over_http.messages
    assert message["to"] == TO
    assert message["sender"] == "TNID-TEST"
    code = re.search(r"\b(\d{6})\b", message["body"]).group(1)  # type: ignore[union-attr]

    registered = await client.post(
        "/api/v1/auth/register",
        json={
            "phone": "0912345678",
            "otp": code,
            "password": PASSWORD,
            "full_name": "Nguyễn Văn An",
        },
    )
    assert registered.status_code == 201, registered.text


async def test_file_sink_writes_one_json_object_per_line(tmp_path: Path):
    path = tmp_path / "not-yet" / "sms.jsonl"
    sink = sms.FileSmsBackend(path)

    await sink.send(TO, TEXT)
    await sink.send("+84987654321", "dòng thứ hai\nvới xuống dòng")

    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert (first["to"], first["body"]) == (TO, TEXT)
    assert (second["to"], second["body"]) == ("+84987654321", "dòng thứ hai\nvới xuống dòng")
    assert "mã xác thực" in lines[0]  # readable Vietnamese, not \\u escapes


def test_file_backend_is_the_default():
    assert get_identity_settings().sms_backend == "file"
    assert isinstance(sms.get_backend(), sms.FileSmsBackend)


def test_fake_gateway_runs_standalone():
    process = subprocess.Popen(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "fake_sms_gateway.py"),
            "--port",
            "0",
            "--api-key",
            KEY,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().split()[-1]
        assert url.startswith("http://127.0.0.1:")
        headers = {"Authorization": f"Bearer {KEY}"}

        sent = httpx.post(url, json={"to": TO, "body": TEXT, "sender": "TNID"}, headers=headers)
        listed = httpx.get(url, headers=headers)
        refused = httpx.post(url, json={"to": TO, "body": TEXT, "sender": "TNID"})
        incomplete = httpx.post(url, json={"to": TO}, headers=headers)
    finally:
        process.terminate()
        process.wait(timeout=10)

    assert sent.status_code == 202
    assert [m["body"] for m in listed.json()["messages"]] == [TEXT]
    assert refused.status_code == 401
    assert incomplete.status_code == 400
