"""End to end against a real server (uvicorn in a subprocess, SQLite, real HTTP on 127.0.0.1):
a citizen registers, submits a birth registration with its attachment, ward staff receive it,
ask for a supplement, approve and return the result, the citizen rates it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from app.core import clock
from app.core.config import PROJECT_ROOT
from app.dossiers.calendar import WorkCalendar, local_date
from app.dossiers.config import DossierSettings
from tests.support.dossiers import birth_body, pdf_bytes, png_bytes

pytestmark = pytest.mark.slow

CITIZEN_PHONE, PASSWORD = "0912345678", "mot-mat-khau-dai-2026"
STAFF_PHONE, STAFF_PASSWORD = "0981000001", "ThaiNguyen@2026"  # seed-demo: Phan Đình Phùng


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("e2e")
    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{root / 'app.db'}",
           "MEDIA_DIR": str(root / "media"), "SMS_FILE_PATH": str(root / "sms.jsonl"),
           "ENVIRONMENT": "test", "RUN_WORKER_IN_PROCESS": "true",
           "WORKER_POLL_INTERVAL_SECONDS": "0.1", "LOG_LEVEL": "WARNING",
           "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    run = [sys.executable, "-m", "app"]
    for command in (["migrate"], ["seed-demo"]):
        subprocess.run([*run, *command], env=env, cwd=PROJECT_ROOT, check=True,
                       capture_output=True, timeout=120)
    process = subprocess.Popen([*run, "serve", "--port", str(port)], env=env, cwd=PROJECT_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("server did not become ready")
        yield base, root / "sms.jsonl"
    finally:
        process.terminate()
        process.wait(timeout=20)


def sms_code(sms_log: Path, to: str) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if sms_log.exists():
            for line in reversed(sms_log.read_text(encoding="utf-8").splitlines()):
                message = json.loads(line)
                if message["to"] == to and (match := re.search(r"\b(\d{6})\b", message["body"])):
                    return match.group(1)
        time.sleep(0.1)
    raise AssertionError("no SMS arrived")


def test_citizen_and_ward_staff_against_a_real_server(server: tuple[str, Path]) -> None:
    base, sms_log = server
    with httpx.Client(base_url=base, timeout=30) as http:
        assert http.post("/api/v1/auth/otp", json={"phone": CITIZEN_PHONE,
                                                   "purpose": "register"}).status_code == 202
        registered = http.post("/api/v1/auth/register", json={
            "phone": CITIZEN_PHONE, "otp": sms_code(sms_log, "+84912345678"),
            "password": PASSWORD, "full_name": "Trần Thị Mai"})
        assert registered.status_code == 201, registered.text
        citizen = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        staff_login = http.post("/api/v1/auth/login", json={"phone": STAFF_PHONE,
                                                           "password": STAFF_PASSWORD})
        staff = {"Authorization": f"Bearer {staff_login.json()['access_token']}"}

        found = http.get("/api/v1/procedures", params={"q": "dang ky khai sinh"}).json()
        assert [p["code"] for p in found] == ["1.001193"]

        scan = http.post("/api/v1/media", headers=citizen,
                         files={"file": ("giay-chung-sinh.pdf", pdf_bytes(300_000),
                                         "application/pdf")})
        assert scan.status_code == 201, scan.text
        body = birth_body(scan.json()["id"])
        key = {"Idempotency-Key": "e2e-birth-0001"}
        submitted = http.post("/api/v1/dossiers", json=body, headers={**citizen, **key})
        retried = http.post("/api/v1/dossiers", json=body, headers={**citizen, **key})
        assert submitted.status_code == 201 and retried.status_code == 200
        code = submitted.json()["code"]
        assert retried.json()["code"] == code
        assert re.fullmatch(r"TNG-PDP-\d{6}-0001", code)

        def act(**payload: object) -> dict:
            response = http.post(f"/api/v1/staff/dossiers/{code}/transitions", json=payload,
                                 headers=staff)
            assert response.status_code == 200, response.text
            return response.json()

        queue = http.get("/api/v1/staff/dossiers", params={"status": "submitted"},
                         headers=staff).json()
        assert [d["code"] for d in queue["items"]] == [code]
        received = act(action="receive", note="Hồ sơ hợp lệ")
        # The appointment: one working day after today (weekends, holidays skipped), 17:00.
        calendar = WorkCalendar(DossierSettings())
        due = calendar.close_of(calendar.add_workdays(local_date(clock.now()), 1))
        assert datetime.fromisoformat(received["due_at"]) == due

        act(action="request_supplement", note="Ảnh giấy chứng sinh bị mờ")
        photo = http.post("/api/v1/media", headers=citizen,
                          files={"file": ("anh.png", png_bytes(), "image/png")})
        supplied = http.post(f"/api/v1/dossiers/{code}/supplement", headers=citizen, json={
            "note": "Đã chụp lại", "documents": [{"document_code": "giay_chung_sinh",
                                                  "media_id": photo.json()["id"]}]})
        assert supplied.status_code == 200 and supplied.json()["status"] == "in_progress"
        approved = act(action="approve")
        assert approved["timeliness"] in {"early", "on_time"}  # decided the same day
        result = http.post("/api/v1/media", headers=staff, data={"purpose": "result"},
                           files={"file": ("trich-luc-khai-sinh.pdf", pdf_bytes(),
                                           "application/pdf")})
        act(action="return_result", result_media_id=result.json()["id"])
        rated = http.post(f"/api/v1/dossiers/{code}/rating", headers=citizen,
                          json={"score": 5, "comment": "Rất hài lòng"})
        assert rated.status_code == 200

        final = http.get(f"/api/v1/dossiers/{code}", headers=citizen).json()
        assert final["status"] == "returned" and final["rating"] == 5
        assert [e["action"] for e in final["timeline"]] == [
            "submit", "receive", "request_supplement", "supplement", "approve",
            "return_result", "rate"]
        got = http.get(f"/api/v1/dossiers/{code}/documents/{result.json()['id']}",
                       headers=citizen)
        assert got.status_code == 200 and got.content == pdf_bytes()
        public = http.get(f"/api/v1/public/dossiers/{code}", params={"phone_last4": "5678"})
        assert public.status_code == 200 and public.json()["status"] == "returned"
