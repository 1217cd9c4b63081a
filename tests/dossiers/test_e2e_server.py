"""End to end against a real server (uvicorn in a subprocess, SQLite file, real HTTP on
127.0.0.1), across Tết 2027: on Wed 3 Feb a citizen registers and submits a birth registration
with its attachment, ward staff receive it (appointment after the holiday) and ask for a
supplement; the holiday passes (Thu 4 – Wed 10 Feb); on Thu 11 Feb the citizen supplements,
staff approve and return the result, the citizen rates it.

The server is restarted for each day with its clock set there (`app.core.clock`, the one place
that tells the time); the database and media persist across restarts.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from app.core import clock
from app.core.config import PROJECT_ROOT
from tests.support.dossiers import birth_body, pdf_bytes, png_bytes

pytestmark = pytest.mark.slow

CITIZEN_PHONE, PASSWORD = "0912345678", "mot-mat-khau-dai-2026"
STAFF_PHONE, STAFF_PASSWORD = "0981000019", "mot-mat-khau-can-bo-2026"
# Every subprocess (argon2 at the tests' cheap cost through the inherited PASSWORD_HASH_*
# environment): the CLI with the clock moved by argv[1] s.
PRELUDE = (
    "import sys; from datetime import timedelta; "
    "from app.core import clock; "
    "clock.advance(timedelta(seconds=float(sys.argv[1]))); from app.__main__ import main; "
)
SETUP = PRELUDE + (
    "main(['migrate']); main(['seed-demo']); "
    "sys.exit(main(['users', 'create', '--phone', sys.argv[2], '--password', sys.argv[3], "
    "'--name', 'Cán bộ tư pháp', '--role', 'ward_staff', '--ward', 'TNG-PDP']))"
)
SERVE = PRELUDE + "sys.exit(main(['serve', '--port', sys.argv[2]]))"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("e2e")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{root / 'app.db'}",
        "MEDIA_DIR": str(root / "media"),
        "SMS_FILE_PATH": str(root / "sms.jsonl"),
        "ENVIRONMENT": "test",
        "RUN_WORKER_IN_PROCESS": "true",
        "WORKER_POLL_INTERVAL_SECONDS": "0.1",
        "LOG_LEVEL": "WARNING",
    }
    subprocess.run(
        [sys.executable, "-c", SETUP, "0", STAFF_PHONE, STAFF_PASSWORD],
        env=env,
        cwd=PROJECT_ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return env


@contextmanager
def server_at(env: dict[str, str], local: datetime) -> Iterator[httpx.Client]:
    """A real server whose clock reads `local` (Asia/Ho_Chi_Minh) when it starts."""
    offset = local.replace(tzinfo=clock.LOCAL_TZ) - clock.now()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(offset.total_seconds()), str(port)],
        env={**env, "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"},
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not become ready")
        with httpx.Client(base_url=base, timeout=30) as http:
            yield http
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


def sign_in(http: httpx.Client, phone: str, password: str) -> dict[str, str]:
    response = http.post("/api/v1/auth/login", json={"phone": phone, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_birth_registration_across_tet_against_a_real_server(environment: dict[str, str]) -> None:
    env, staff_phone = environment, STAFF_PHONE
    sms_log = Path(env["SMS_FILE_PATH"])

    with server_at(env, datetime(2027, 2, 3, 9, 0)) as http:  # Wednesday, before Tết
        assert (
            http.post(
                "/api/v1/auth/otp", json={"phone": CITIZEN_PHONE, "purpose": "register"}
            ).status_code
            == 202
        )
        registered = http.post(
            "/api/v1/auth/register",
            json={
                "phone": CITIZEN_PHONE,
                "otp": sms_code(sms_log, "+84912345678"),
                "password": PASSWORD,
                "full_name": "Trần Thị Mai",
            },
        )
        assert registered.status_code == 201, registered.text
        citizen = {"Authorization": f"Bearer {registered.json()['access_token']}"}
        staff = sign_in(http, staff_phone, STAFF_PASSWORD)

        found = http.get("/api/v1/procedures", params={"q": "dang ky khai sinh"}).json()
        assert [p["code"] for p in found] == ["1.001193"]
        scan = http.post(
            "/api/v1/media",
            headers=citizen,
            files={"file": ("giay-chung-sinh.pdf", pdf_bytes(300_000), "application/pdf")},
        )
        assert scan.status_code == 201, scan.text
        body, key = birth_body(scan.json()["id"]), {"Idempotency-Key": "e2e-birth-0001"}
        submitted = http.post("/api/v1/dossiers", json=body, headers={**citizen, **key})
        retried = http.post("/api/v1/dossiers", json=body, headers={**citizen, **key})
        assert submitted.status_code == 201 and retried.status_code == 200
        code = submitted.json()["code"]
        assert code == "TNG-PDP-270203-0001" and retried.json()["code"] == code

        queue = http.get(
            "/api/v1/staff/dossiers", params={"status": "submitted"}, headers=staff
        ).json()
        assert [d["code"] for d in queue["items"]] == [code]
        received = http.post(
            f"/api/v1/staff/dossiers/{code}/transitions",
            headers=staff,
            json={"action": "receive", "note": "Hồ sơ hợp lệ"},
        )
        assert received.status_code == 200, received.text
        # One working day after Wed 3 Feb is Thu 11 Feb (Tết: 4–10 Feb), 17:00 local.
        assert received.json()["due_at"] == "2027-02-11T10:00:00Z"
        asked = http.post(
            f"/api/v1/staff/dossiers/{code}/transitions",
            headers=staff,
            json={"action": "request_supplement", "note": "Ảnh giấy chứng sinh bị mờ"},
        )
        assert asked.json()["status"] == "supplement_requested" and asked.json()["paused"]

    with server_at(env, datetime(2027, 2, 11, 9, 0)) as http:  # Thursday after Tết
        citizen = sign_in(http, CITIZEN_PHONE, PASSWORD)
        staff = sign_in(http, staff_phone, STAFF_PASSWORD)
        photo = http.post(
            "/api/v1/media", headers=citizen, files={"file": ("anh.png", png_bytes(), "image/png")}
        )
        supplied = http.post(
            f"/api/v1/dossiers/{code}/supplement",
            headers=citizen,
            json={
                "note": "Đã chụp lại",
                "documents": [{"document_code": "giay_chung_sinh", "media_id": photo.json()["id"]}],
            },
        )
        assert supplied.status_code == 200, supplied.text
        # Paused Wed 3 Feb, resumed Thu 11 Feb: one working day waited (Tết not counted), so
        # the deadline moves one working day, to Fri 12 Feb.
        assert supplied.json()["due_at"] == "2027-02-12T10:00:00Z"
        approved = http.post(
            f"/api/v1/staff/dossiers/{code}/transitions", headers=staff, json={"action": "approve"}
        )
        assert approved.json()["timeliness"] == "early"
        result = http.post(
            "/api/v1/media",
            headers=staff,
            data={"purpose": "result"},
            files={"file": ("trich-luc-khai-sinh.pdf", pdf_bytes(), "application/pdf")},
        )
        returned = http.post(
            f"/api/v1/staff/dossiers/{code}/transitions",
            headers=staff,
            json={"action": "return_result", "result_media_id": result.json()["id"]},
        )
        assert returned.status_code == 200, returned.text
        rated = http.post(
            f"/api/v1/dossiers/{code}/rating",
            headers=citizen,
            json={"score": 5, "comment": "Rất hài lòng"},
        )
        assert rated.status_code == 200

        final = http.get(f"/api/v1/dossiers/{code}", headers=citizen).json()
        assert final["status"] == "returned" and final["rating"] == 5
        assert final["timeliness"] == "early" and final["processing_days"] == 0
        assert [(e["action"], e["at"][:10]) for e in final["timeline"]] == [
            ("submit", "2027-02-03"),
            ("receive", "2027-02-03"),
            ("request_supplement", "2027-02-03"),
            ("supplement", "2027-02-11"),
            ("approve", "2027-02-11"),
            ("return_result", "2027-02-11"),
            ("rate", "2027-02-11"),
        ]
        got = http.get(f"/api/v1/dossiers/{code}/documents/{result.json()['id']}", headers=citizen)
        assert got.status_code == 200 and got.content == pdf_bytes()
        public = http.get(f"/api/v1/public/dossiers/{code}", params={"phone_last4": "5678"})
        assert public.status_code == 200 and public.json()["status"] == "returned"
